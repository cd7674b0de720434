"""The collector's policy rests on deciding making no reference cycles: checked here, so a change that makes
some shows up as a failure rather than as memory that only a full pass would free."""
from __future__ import annotations

import gc

from hive_streams.collector import STEADY_THRESHOLDS, steady
from hive_streams.domain import commands as c
from hive_streams.kafka.seal import SealCheck, Sealer

from .test_deciders import TOPICS, codec, command_msg, submit
from hive_streams.streams.deciders import PartitionState, task_aggregate

SECRET = b"s" * 32


def sealed(command, offset: int):
    msg = command_msg(command, offset, TOPICS.task_commands, 1, "acme/ann")
    msg.headers.append(Sealer.service(SECRET).header(msg.value, msg.headers))
    return msg


def test_deciding_and_applying_a_batch_leaves_no_cycles_for_the_collector():
    state = PartitionState(codec, task_aggregate(3_600_000), TOPICS, TOPICS.task_events, 0, 1,
                           sealer=Sealer.service(SECRET), seal=SealCheck(SECRET))
    commands = [submit(f"acme:t{i}") for i in range(300)]
    commands += [c.CancelTask(f"acme:t{i}", f"cancel-{i}", 2) for i in range(0, 300, 3)]
    commands += [commands[0], c.CancelTask("acme:nobody", "cancel-x", 2)]  # a repeat, one that changes nothing
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        decided = state.decide([sealed(cmd, i) for i, cmd in enumerate(commands)], now=100)
        state.apply(decided)
        assert decided.events == 400 and len(state.states) == 300
        del decided
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_steady_spaces_the_passes_out():
    before = gc.get_threshold()
    try:
        steady()
        assert gc.get_threshold() == STEADY_THRESHOLDS
    finally:
        gc.set_threshold(*before)
