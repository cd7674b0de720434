"""The decider's CPU a command, alone: no broker, no IO, one process.

`python -m bench.decide_cpu [N] [ROUNDS]`: N `SubmitTask` commands (default 5,000), each with a principal as the API
writes them, decided on a fresh `PartitionState` of the task family in batches of 500 (the engine's
`DECIDE_CHUNK`), ROUNDS times (default 7); prints the best round's microseconds a command, for commands without a
trace context (the API's default without a span exporter) and with one (a client's trace). What one
process spends deciding, encoding and tracing a command, without the Kafka client's share: run two checkouts one
after the other, alternating, to compare a change on a machine whose speed moves.
"""
from __future__ import annotations

import sys
import time
from typing import NamedTuple

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.definition import parse_task
from hive_streams.kafka.principal import principal_header
from hive_streams.streams.deciders import PartitionState, task_aggregate
from hive_streams.topics import Topics

CHUNK = 500


class Read(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list


def commands(n: int, topics: Topics, traced: bool = True) -> list[Read]:
    codec, spec = default_codec(), parse_task({"name": "n", "nodes": [{"id": "a", "kind": "echo", "value": "x"}]}, 0)
    out = []
    for i in range(n):
        command = c.SubmitTask.of(f"bench:t{i}", f"submit-{i}", 1, "bench/bench", spec)
        trace = f"00-{i + 1:032x}-00f067aa0ba902b7-01" if traced else None
        key, value, headers = codec.message(command, "/bench", traceparent=trace)
        out.append(Read(topics.task_commands, 0, i, key, value, headers + [principal_header("bench/bench")]))
    return out


def best_us(n: int = 5000, rounds: int = 7, traced: bool = True) -> float:
    topics, codec = Topics("bench", 1), default_codec()
    reads, best = commands(n, topics, traced), float("inf")
    for _ in range(rounds):
        state = PartitionState(codec, task_aggregate(), topics, topics.task_events, 0, 1)
        started = time.perf_counter()
        for i in range(0, n, CHUNK):
            state.decide(reads[i:i + CHUNK], 2)
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    for traced in (False, True):
        print(f"{best_us(*args, traced=traced):.1f} us a SubmitTask command {'with' if traced else 'without'} a trace "
              f"context (best of {args[1] if len(args) > 1 else 7} rounds)")
