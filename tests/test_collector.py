"""The collector's policy rests on deciding making no reference cycles: checked here, so a change that makes
some shows up as a failure rather than as memory that only a full pass would free."""
from __future__ import annotations

import gc
import sys
from types import SimpleNamespace

import pytest

from hive_streams.collector import STEADY_THRESHOLDS, steady
from hive_streams.domain import commands as c
from hive_streams.kafka.seal import SealCheck, Sealer
from hive_streams.settings import Settings

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


@pytest.fixture
def collector_restored():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_steady_spaces_the_passes_out_and_leaves_start_up_out_of_them(collector_restored):
    steady()
    assert gc.get_threshold() == STEADY_THRESHOLDS and gc.get_freeze_count() > 0


@pytest.mark.parametrize("command", ["worker", "executor", "api", "connect", "connector main"])
def test_every_long_running_process_runs_with_the_passes_spaced_out(monkeypatch, tmp_path, collector_restored,
                                                                    command):
    """With Python's defaults the connector spent 21% of its CPU in the collector, the API 22% (bench/FINDINGS.md).
    The API keeps Python's thresholds (a closed feed leaves cycles that die old) and freezes what start-up made."""
    import logging

    import uvicorn

    from connectors import audit
    from hive_streams import cli, logs, metrics
    from hive_streams.api import app
    from hive_streams.executor import runtime
    from hive_streams.streams import worker

    seen = []

    def run(main, *args, **kwargs):  # what the process would run, with the collector it runs under
        seen.append((gc.get_threshold(), gc.get_freeze_count() > 0))
        if hasattr(main, "close"):
            main.close()

    class Executor:  # builds nothing: no Kafka, no keys
        def __init__(self, settings, offer):
            self.run = lambda *a: None

    for module in (cli.asyncio, worker.asyncio, audit.asyncio):
        monkeypatch.setattr(module, "run", run)
    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(metrics, "serve", lambda *a, **k: None)
    monkeypatch.setattr(app, "create_app", lambda s: None)
    monkeypatch.setattr(runtime, "Executor", Executor)
    monkeypatch.setattr(logs, "configure", lambda *a: None)
    monkeypatch.setattr(audit.logging, "basicConfig", lambda *a, **k: None)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # the worker's loop stays the tests' own
    aiokafka_level = logging.getLogger("aiokafka").level
    args = SimpleNamespace(loglevel="warning", agent_id="a", name=None, capabilities="echo", slots=1, endpoint="",
                           model="", gpu_type="", vram_gb=0.0, cpu_cores=1, ram_gb=0.0, price=0.0, target=None,
                           metrics_port=None)
    gc.set_threshold(700, 10, 10)  # Python's defaults
    gc.unfreeze()
    try:
        if command == "connector main":
            audit.main()
        else:
            getattr(cli, f"cmd_{command}")(args, Settings(home=str(tmp_path), kafka_user="u", kafka_password="p"))
    finally:
        logging.getLogger("aiokafka").setLevel(aiokafka_level)
    assert seen == [((700, 10, 10) if command == "api" else STEADY_THRESHOLDS, True)]
