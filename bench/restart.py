"""6. Restart: seconds from a worker's process start until it owns every command partition and is ready to
decide, with N events in the history of its task, agent and ledger event topics; first with no snapshot
(cold: it folds every event and writes snapshots), then again from the snapshots the first start wrote.

The history is made by the domain's own `decide` (and `evolve`), as the deciders would have written it:
agents register and heartbeat, requesters deposit money, each task is submitted, validated, assigned
after its agent reserved a slot, started, run and completed with a signed result, and the slot is
released; one task in PRICED_EVERY is paid for through an escrow held and released on the ledger. The
agents deregister at the end, so no timer acts on the restarted worker. Each event is written to its
topic and partition with the key and headers of `Codec.message` (CloudEvents, the causing command's id);
the commands themselves are not in the log, so neither is the header that names a command's offset."""
from __future__ import annotations

import asyncio
import collections
import datetime
import re
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import Capability, NodeOutput, NodeSpec, result_digest
from hive_streams.executor.signing import Signer
from hive_streams.settings import load as load_settings
from hive_streams.streams.deciders import SOURCE, agent_aggregate, ledger_aggregate, task_aggregate
from hive_streams.streams.snapshots import newest
from hive_streams.topics import partition_for

from .common import Context, cpu_seconds, kafka_as, kafka_options, summary
from .stack import Stack

AGENTS = 64
SLOTS = 64
REQUESTERS = 32
PRICED_EVERY = 8
PRICE_CENTS = 100
BATCH = 500  # tasks whose lives interleave in the log, as in a busy system
SECONDS_PER_BATCH = 1
EVENTS_PER_TASK = 9  # 7 task events and 2 agent events, without the ledger's, the heartbeats and the setup
SMOKE_SNAPSHOT_EVERY = 500  # smoke histories are smaller than the default HIVE_SNAPSHOT_EVERY_EVENTS
OWN = re.compile(r"^(\S+ \S+) INFO \S+: own (\S+)\[(\d+)\]: (\d+) aggregates from (.+) and (\d+) events in "
                 r"([\d.]+)s; resuming at")
CAUGHT_UP = re.compile(r"^(\S+ \S+) INFO \S+: matcher caught up")
PROBLEM = re.compile(r"^(\S+ \S+) ((?:WARNING|ERROR|CRITICAL) .*)")
REVOKED = re.compile(r"^(\S+ \S+) INFO \S+: revoked (.+) \(\d+ with an open transaction\)")


class History:
    """Decides commands against the aggregates' states and returns the events, as a decider would."""

    def __init__(self, now: int):
        settings = load_settings()
        self.fee_bps = settings.platform_fee_bps
        self.families = {"task": task_aggregate(), "agent": agent_aggregate(int(settings.agent_timeout_seconds * 1000)),
                         "ledger": ledger_aggregate()}
        self.states = {family: {} for family in self.families}
        self.now = now
        self.count = 0
        self.by_type = collections.Counter()

    def __call__(self, family: str, command) -> list[tuple[str, object, str]]:
        aggregate, states = self.families[family], self.states[family]
        key = default_codec().key(command)
        state = states.get(key) or aggregate.initial(key.decode())
        events = aggregate.decide(command, state, self.now)
        for event in events:
            state = aggregate.evolve(state, event)
            self.by_type[type(event).__name__] += 1
        states[key] = state
        self.count += len(events)
        return [(family, event, command.command_id) for event in events]


def events(n: int, now: int):
    """(family, event, causing command id) of a history of about n events (a few more: the last batch of tasks
    is finished and the agents deregister), in log order; the History is sent first, to be read at the end."""
    start = now - (n // (EVENTS_PER_TASK * BATCH) + 2) * SECONDS_PER_BATCH * 1000
    h = History(start)
    yield h
    signers = {f"agent-{a:02d}": Signer(Ed25519PrivateKey.generate()) for a in range(AGENTS)}
    for agent, signer in signers.items():
        yield from h("agent", c.RegisterAgent(agent, f"register-{agent}", h.now, agent, (Capability("echo"),),
                                              slots=SLOTS, public_key=signer.public_key))
    for r in range(REQUESTERS):
        yield from h("ledger", c.DepositFunds(LEDGER_ID, f"deposit-{r}", h.now, f"requester-{r:02d}",
                                              10_000_000, reference=f"bench-{r}"))
    agents = list(signers)
    first = 0
    while h.count < n - AGENTS:
        h.now += SECONDS_PER_BATCH * 1000
        for agent in agents:
            yield from h("agent", c.Heartbeat(agent, f"beat-{agent}-{h.now}", h.now, running=BATCH // AGENTS))
        size = min(BATCH, -(-(n - h.count - AGENTS) // EVENTS_PER_TASK))  # the last batch only as large as needed
        lives = [lifecycle(h, i, agents[i % AGENTS], signers[agents[i % AGENTS]]) for i in range(first, first + size)]
        first += size
        while lives:
            for life in list(lives):
                step = next(life, None)
                if step is None:
                    lives.remove(life)
                else:
                    yield from h(*step)
    for agent in agents:
        yield from h("agent", c.DeregisterAgent(agent, f"deregister-{agent}", h.now, reason="bench history ends"))


def lifecycle(h: History, i: int, agent: str, signer: Signer):
    """(family, command) of one task's life, in order."""
    task_id, now = f"t{i:07d}", h.now
    priced = i % PRICED_EVERY == 0
    escrow = f"escrow-{task_id}" if priced else ""
    yield "task", c.SubmitTask(task_id, f"submit-{task_id}", now, "noop", f"requester-{i % REQUESTERS:02d}",
                               (NodeSpec(id="n", kind="echo"),), budget=PRICE_CENTS / 100 if priced else None)
    if priced:
        yield "ledger", c.HoldEscrow(LEDGER_ID, f"hold-{task_id}", now, escrow, task_id,
                                     f"requester-{i % REQUESTERS:02d}", agent, PRICE_CENTS)
    yield "agent", c.ReserveSlot(agent, f"reserve-{task_id}", now, task_id, escrow)
    yield "task", c.AssignTask(task_id, f"assign-{task_id}", now, agent, escrow, signer.public_key)
    run = {"task_id": task_id, "at": now, "agent_id": agent, "attempt": 1}
    output = '{"ok": true}'
    digest = result_digest(task_id, 1, {"n": output})
    yield "task", c.ReportTaskResult(**run, command_id=f"result-{task_id}", digest=digest, signature=signer.sign(digest),
                                     nodes=(NodeOutput("n", output),))  # a fast task: one report
    yield "agent", c.ReleaseSlot(agent, f"release-{task_id}", now, task_id)
    if priced:
        yield "ledger", c.ReleaseEscrow(LEDGER_ID, f"pay-{task_id}", now, escrow, h.fee_bps)


async def write_history(stack: Stack, n: int) -> dict:
    """Produces the history to the stack's event topics; returns its counts."""
    codec, layout, t = default_codec(), stack.topics.layout(), stack.topics
    topics = {"task": t.task_events, "agent": t.agent_events, "ledger": t.ledger_events}
    producer = AIOKafkaProducer(**kafka_options(stack.bootstrap), acks="all", enable_idempotence=True, linger_ms=20,
                                max_batch_size=512 * 1024)
    await producer.start()
    stream = events(n, int(time.time() * 1000))
    history = next(stream)
    per_partition, size, pending = collections.Counter(), 0, []
    try:
        for family, event, cause in stream:
            key, value, headers = codec.message(event, SOURCE, causation_id=cause)
            topic = topics[family]
            partition = partition_for(key, layout[topic][0])
            pending.append(await producer.send(topic, value, key=key, headers=headers, partition=partition))
            per_partition[f"{topic}[{partition}]"] += 1
            size += len(value)
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    tasks = len(history.states["task"])
    assert history.by_type["TaskCompleted"] == tasks, f"{tasks - history.by_type['TaskCompleted']} tasks did not complete"
    return {"events": history.count, "tasks": tasks, "priced_tasks": history.by_type["EscrowHeld"],
            "agents": len(history.states["agent"]), "bytes_per_event": size / history.count,
            "by_type": dict(history.by_type), "per_partition": dict(per_partition)}


def _stamp(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def read_log(path: Path, began: float, partitions: int) -> dict:
    """What a worker's log says so far: when each partition was first owned (and how), whether the set of
    partitions was complete before any was revoked, and when the matcher caught up; seconds from `began`."""
    first, lines_owned, revoked, caught_up, ready, last, problems = {}, 0, [], None, None, None, []
    for line in path.read_text(errors="replace").splitlines():
        if m := OWN.match(line):
            lines_owned += 1
            last = _stamp(m[1]) - began
            key = f"{m[2]}[{m[3]}]"
            if key not in first:
                first[key] = {"at_s": _stamp(m[1]) - began, "aggregates": int(m[4]), "from": m[5],
                              "events_folded": int(m[6]), "load_s": float(m[7])}
        elif m := REVOKED.match(line):
            if m[2] != "nothing":
                revoked.append({"at_s": _stamp(m[1]) - began, "partitions": m[2]})
        elif m := CAUGHT_UP.match(line):
            caught_up = caught_up if caught_up is not None else _stamp(m[1]) - began
        elif m := PROBLEM.match(line):
            problems.append(f"{_stamp(m[1]) - began:.2f}s {m[2]}")
        if ready is None and len(first) == partitions:
            ready = max(p["at_s"] for p in first.values())
    return {"first_owned": first, "ready_s": ready, "own_lines": lines_owned, "revoked": revoked,
            "last_own_s": last, "matcher_caught_up_s": caught_up, "warnings": problems}


def start_worker(stack: Stack, name: str, partitions: int, timeout: float, env: dict[str, str],
                 matcher_wait: float = 60) -> dict:
    """Starts a worker, waits until its log says it owns every command partition (and, for information, until
    the matcher has caught up), then stops it. Seconds are from just before the process was started. Ready is
    the first time every partition was owned; a revocation after it (the group evicting a member whose
    assignment took longer than its session timeout) is noted with the time it owned them all again."""
    began = time.time()
    proc = stack.fabric.spawn(name, "--loglevel", "info", "worker", extra_env=env)
    seen, cpu_at_ready = {}, None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            stack._check()
            seen = read_log(proc.log_path, began, partitions)
            if seen["ready_s"] is not None and cpu_at_ready is None:
                cpu_at_ready = cpu_seconds(proc.popen.pid)
                deadline = min(deadline, time.monotonic() + matcher_wait)  # the matcher is for information only
            if seen["matcher_caught_up_s"] is not None and cpu_at_ready is not None:
                break
            time.sleep(0.05)
        if seen.get("ready_s") is None:
            raise TimeoutError(f"{name} owned {len(seen.get('first_owned', {}))} of {partitions} partitions after "
                               f"{timeout:.0f}s:\n{proc.tail()}")
        stopping = time.monotonic()
        proc.stop(timeout=60)
        stopped = time.monotonic() - stopping
    except BaseException:
        proc.kill()
        raise
    seen = read_log(proc.log_path, began, partitions)
    owned = seen["first_owned"]
    return {"ready_s": seen["ready_s"], "first_load_began_s": min(p["at_s"] - p["load_s"] for p in owned.values()),
            "matcher_caught_up_s": seen["matcher_caught_up_s"], "cpu_s_to_ready": cpu_at_ready, "stop_s": stopped,
            "own_lines": seen["own_lines"], "revoked": seen["revoked"], "last_own_s": seen["last_own_s"],
            "warnings": seen["warnings"],
            "partitions": dict(sorted(owned.items()))}


async def snapshot_sizes(stack: Stack) -> dict[str, int]:
    """Bytes (before compression) of the newest matcher snapshot and of each task partition's."""
    kafka, t = kafka_as("admin", stack.bootstrap), stack.topics
    places = {"matcher": TopicPartition(t.matcher_snapshots, 0),
              **{f"task[{p}]": TopicPartition(t.snapshots_of(t.task_events), p) for p in range(t.partitions)}}
    sizes = {}
    for name, tp in places.items():
        found = await newest(kafka, tp)
        sizes[name] = len(found[1]) if found else 0
    return sizes


def run(ctx: Context) -> dict:
    n = ctx.sizes["restart"]
    env = {"HIVE_SNAPSHOT_EVERY_EVENTS": str(SMOKE_SNAPSHOT_EVERY)} if ctx.mode == "smoke" else {}
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).create()
    layout = stack.topics.layout()
    partitions = sum(count for topic, (count, _) in layout.items() if topic.endswith(".commands"))  # every family's
    timeout = 120 + n / 2_000
    try:
        made = time.perf_counter()
        history = asyncio.run(write_history(stack, n))
        history["seconds_to_make"] = time.perf_counter() - made
        wait = 60 + n / 10_000
        cold = start_worker(stack, "worker-cold", partitions, timeout, env, wait)
        warm = [start_worker(stack, f"worker-warm-{i}", partitions, timeout, env, wait)
                for i in range(ctx.sizes["repeats"])]
        sizes = asyncio.run(snapshot_sizes(stack))
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    settings = load_settings()
    return {"command": ctx.cmd("restart"), "events": history["events"], "history": history,
            "snapshot_every_events": int(env.get("HIVE_SNAPSHOT_EVERY_EVENTS", settings.snapshot_every_events)),
            "partitions": partitions, "cold": cold, "warm": warm, "snapshot_bytes": sizes,
            "cold_ready_s": summary([cold["ready_s"]]), "warm_ready_s": summary([w["ready_s"] for w in warm]),
            "target_s": 5.0, "target_events": 1_000_000}
