"""`python -m bench.signatures [--n N]`: what executor-command signatures cost, without a broker.

Three figures, each the best of five runs over the same records (one core, no IO):
- Ed25519 verifications/s of a typical record (a ReportNodeProgress, as the door checks it: hex decode,
  the context, a cached public key);
- signatures/s, the executor's side;
- a task decider's batch of N signed progress reports through the door against the same batch through
  a door that checks nothing, so the difference is what the door adds per command, decide included.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams.codec import default_codec
from hive_streams.codec.signature import SIGNATURE_HEADER
from hive_streams.domain import commands as c
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.task import TaskState
from hive_streams.executor.signing import Signer
from hive_streams.streams.deciders import PartitionState, task_aggregate
from hive_streams.streams.door import open_door
from hive_streams.streams.verify import command_signature_valid
from hive_streams.topics import Topics

RUNS = 5


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list = field(default_factory=list)


def best(fn, n: int) -> float:
    """Operations per second of the fastest of RUNS runs of fn (which does n operations)."""
    fastest = min(_timed(fn) for _ in range(RUNS))
    return n / fastest


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def reports(signer: Signer, n: int) -> list[Msg]:
    codec, topics = default_codec(), Topics("bench", 1)
    out = []
    for i in range(n):
        command = c.ReportNodeProgress(f"t{i}", f"p{i}", 1, "ag", 1, "n", 0.5, "half way")
        key, value, headers = codec.message(command, "/bench")
        out.append(Msg(topics.task_commands, 0, i, key, value, headers + [(SIGNATURE_HEADER, signer.sign_command(value))]))
    return out


def decider(signer: Signer, n: int, door) -> PartitionState:
    topics = Topics("bench", 1)
    state = PartitionState(default_codec(), replace(task_aggregate(), door=door), topics, topics.task_events, 0, 1)
    for i in range(n):
        state.states[f"t{i}".encode()] = TaskState(f"t{i}", seq=2, status="running", agent_id="ag", attempt=1,
                                                   agent_key=signer.public_key, nodes=(NodeSpec("n", "echo"),),
                                                   node_status={"n": "running"})
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.signatures", description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="records per run (default 5000)")
    n = parser.parse_args(argv).n
    signer = Signer(Ed25519PrivateKey.generate())
    messages = reports(signer, n)
    pairs = [(m.value, dict(m.headers)[SIGNATURE_HEADER].decode()) for m in messages]
    key = signer.public_key
    assert all(command_signature_valid(key, v, s) for v, s in pairs)

    verify = best(lambda: [command_signature_valid(key, v, s) for v, s in pairs], n)
    sign = best(lambda: [signer.sign_command(v) for v, _ in pairs], n)
    checked = best(lambda: decider(signer, n, task_aggregate().door).decide(messages, 10), n)
    unchecked = best(lambda: decider(signer, n, open_door).decide(messages, 10), n)
    print(f"records of {len(messages[0].value)} bytes, best of {RUNS} runs of {n}")
    print(f"verify:  {verify:10,.0f} /s  ({1e6 / verify:.1f} µs each)")
    print(f"sign:    {sign:10,.0f} /s  ({1e6 / sign:.1f} µs each)")
    print(f"decide, door checking signatures: {checked:10,.0f} commands/s")
    print(f"decide, door open:                {unchecked:10,.0f} commands/s")
    print(f"the door adds {1e6 / checked - 1e6 / unchecked:.1f} µs a command")


if __name__ == "__main__":
    main()
