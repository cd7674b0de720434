"""One history per aggregate out of the raw log, and what is wrong with it.

`history` takes every record as read and reports, before anything is merged: records that do not
decode, records that are not events, keys that are not the event's aggregate, an aggregate on more
than one partition, two different events (by their value bytes) at one aggregate/seq, and seqs of an
aggregate that are not exactly 1..n.
Only byte-identical copies collapse. The invariants then run on the one history that remains.
"""
from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from hive_streams.codec import aggregate_id
from hive_streams.codec.strays import EVENT_TYPES
from hive_streams.domain import events as e
from hive_streams.domain.matching import RELEASING
from hive_streams.domain.model import capability_shortfall, needs, node_digest, result_digest

from .ledgercheck import ledger_problems

FAMILIES = {kind: family for family, kind in EVENT_TYPES.items()}


def family(event) -> str | None:
    return next((name for base, name in FAMILIES.items() if isinstance(event, base)), None)


@dataclass
class History:
    aggregates: dict[tuple[str, str], list] = field(default_factory=dict)  # (family, id) -> events by seq
    problems: list[str] = field(default_factory=list)

    def of(self, kind: str) -> dict[str, list]:
        return {agg: events for (fam, agg), events in sorted(self.aggregates.items()) if fam == kind}

    def events(self, kind: str) -> list:
        return [ev for events in self.of(kind).values() for ev in events]


def history(records) -> History:
    h = History()
    by_seq: dict[tuple[str, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.event is None:
            h.problems.append(f"{r.where}: undecodable ({r.error or 'no reason given'})")
            continue
        kind = family(r.event)
        if kind is None:
            h.problems.append(f"{r.where}: {type(r.event).__name__} is not an event")
            continue
        agg = aggregate_id(r.event)
        if r.key != agg.encode():
            h.problems.append(f"{r.where}: key {r.key!r} is not the aggregate {agg!r}")
        by_seq[(kind, agg)][r.event.seq].append(r)
    for (kind, agg), seqs in sorted(by_seq.items()):
        for seq, copies in sorted(seqs.items()):
            if len({r.value for r in copies}) > 1:
                told = ", ".join(f"{type(r.event).__name__} at {r.where}" for r in copies)
                h.problems.append(f"{kind} {agg}/{seq}: different events at one seq: {told}")
        places = sorted({(r.topic, r.partition) for copies in seqs.values() for r in copies})
        if len(places) > 1:
            h.problems.append(f"{kind} {agg}: on more than one partition: {places}")
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            h.problems.append(f"{kind} {agg}: seqs are not 1..{len(seqs)}: {_ranges(sorted(seqs))}")
        h.aggregates[(kind, agg)] = [copies[0].event for _, copies in sorted(seqs.items())]
    return h


def _ranges(seqs: list[int]) -> str:
    out, start = [], seqs[0]
    for prev, cur in zip(seqs, seqs[1:] + [None]):
        if cur != prev + 1:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(out)


def endings(h: History) -> dict[str, Counter]:
    return {task: Counter(type(ev).__name__ for ev in events if isinstance(ev, e.TERMINAL_TASK_EVENTS))
            for task, events in h.of("task").items()}


def ending_problems(h: History) -> list[str]:
    """Every task ends exactly once."""
    return [f"task {task} ended {sum(ends.values())} times: {dict(ends) or 'never'}"
            for task, ends in endings(h).items() if sum(ends.values()) != 1]


def capacity_problems(h: History) -> list[str]:
    """Replays each agent's history: slots held never exceed the slots offered."""
    problems = []
    for agent, events in h.of("agent").items():
        holding, slots = set(), 0
        for ev in events:
            if isinstance(ev, e.AgentRegistered):
                slots = ev.slots
            elif isinstance(ev, e.SlotReserved):
                holding.add(ev.task_id)
                if len(holding) > slots:
                    problems.append(f"agent {agent} holds {len(holding)} > {slots} slots at seq {ev.seq}")
            elif isinstance(ev, e.SlotReleased):
                holding.discard(ev.task_id)
            elif isinstance(ev, e.AgentStatusChanged) and ev.status == "offline" and not ev.holds_kept:
                holding.clear()
    return problems


def release_problems(h: History) -> list[str]:
    """Once every task ended, each slot reserved was released once, and by its own attempt's end (or its offer's
    decline): as many reservations of a task at an agent as releases, and as many as ends naming that agent.
    A release that freed a later attempt's slot shows as a reservation left held or released once too few."""
    ends = Counter((ev.agent_id, ev.task_id) for ev in h.events("task") if isinstance(ev, RELEASING) and ev.agent_id)
    reserved, released = Counter(), Counter()
    for agent, events in h.of("agent").items():
        for ev in events:
            if isinstance(ev, e.SlotReserved):
                reserved[(agent, ev.task_id)] += 1
            elif isinstance(ev, e.SlotReleased):
                released[(agent, ev.task_id)] += 1
            elif isinstance(ev, e.AgentStatusChanged) and ev.status == "offline" and not ev.holds_kept:
                for task in ev.lost_tasks:  # written before holds were kept: the offline freed them
                    released[(agent, task)] += 1
    return [f"task {task} at agent {agent}: {reserved[(agent, task)]} reservations, {released[(agent, task)]} "
            f"releases, {ends[(agent, task)]} ends" for agent, task in sorted(set(reserved) | set(released) | set(ends))
            if not reserved[(agent, task)] == released[(agent, task)] == ends[(agent, task)]]


def unbacked_assignments(h: History) -> list[str]:
    """Every assignment follows a slot its agent reserved for that task (and escrow); one slot backs one."""
    reserved = Counter((ev.agent_id, ev.task_id, ev.escrow_id) for ev in h.events("agent")
                       if isinstance(ev, e.SlotReserved))
    assigned = Counter((ev.agent_id, ev.task_id, ev.escrow_id) for ev in h.events("task")
                       if isinstance(ev, e.TaskAssigned))
    return [f"task {task} assigned to {agent} {n} times on {reserved[(agent, task, escrow)]} reservations"
            f"{f' (escrow {escrow})' if escrow else ''}"
            for (agent, task, escrow), n in sorted(assigned.items()) if n > reserved[(agent, task, escrow)]]


def unmet_requirements(h: History) -> list[str]:
    """An assignment the matcher made (not an operator's pin) meets capabilities, hardware and budget."""
    offers = {ev.agent_id: ev for ev in h.events("agent") if isinstance(ev, e.AgentRegistered)}
    out = []
    for task, events in h.of("task").items():
        need, pinned = None, False
        for ev in events:
            if isinstance(ev, e.TaskValidated):
                need = ev
            elif isinstance(ev, e.TaskSubmitted) and ev.queued:
                need = replace(ev, requires=needs(ev.nodes, ev.requires))
            elif isinstance(ev, e.TaskPinned):
                pinned = True
            elif isinstance(ev, e.TaskRetryScheduled):
                pinned = False  # a pin is one placement
            elif isinstance(ev, e.TaskAssigned) and not pinned:
                offer = offers.get(ev.agent_id)
                why = ("agent never registered" if offer is None or need is None else
                       capability_shortfall(offer.capabilities, need.requires) or offer.hardware.covers(need.hardware)
                       or ("over budget" if need.budget is not None and offer.price > need.budget else ""))
                if why:
                    out.append(f"task {task} on {ev.agent_id}: {why}")
    return out


def unverified_results(h: History) -> list[str]:
    """Every recorded node output and every completion carries the digest of what it records."""
    out = []
    for task, events in h.of("task").items():
        attempt = 0
        for ev in events:
            if isinstance(ev, e.TaskAssigned):
                attempt = ev.attempt
            elif isinstance(ev, e.NodeCompleted) and ev.digest != node_digest(task, ev.attempt, ev.node_id, ev.output_json):
                out.append(f"task {task}/{ev.seq}: node {ev.node_id} recorded without its digest")
            elif isinstance(ev, e.TaskCompleted):
                outputs = {o.node_id: o.output_json for o in ev.outputs}
                if ev.result_digest != result_digest(task, attempt, outputs):
                    out.append(f"task {task}/{ev.seq}: completed without the digest of its result")
    return out


REFUNDING = (e.TaskFailed, e.TaskCancelled, e.TaskRejected, e.TaskRetryScheduled, e.TaskAssignmentDeclined,
             e.SlotRefused)


def payment_problems(h: History) -> list[str]:
    """A completed task's escrow is released to its agent, and only a completed task's; an escrow let go any
    other way is refunded."""
    settled = {ev.escrow_id: ev for ev in h.events("ledger") if isinstance(ev, (e.EscrowReleased, e.EscrowRefunded))}
    out = []
    for ev in h.events("task") + h.events("agent"):
        if isinstance(ev, (e.TaskCompleted, *REFUNDING)) and getattr(ev, "escrow_id", ""):
            want = e.EscrowReleased if isinstance(ev, e.TaskCompleted) else e.EscrowRefunded
            got = settled.get(ev.escrow_id)
            if not isinstance(got, want):
                out.append(f"task {ev.task_id} {type(ev).__name__}: escrow {ev.escrow_id} "
                           f"{type(got).__name__ if got else 'never settled'}, not {want.__name__}")
    earned = {ev.escrow_id: ev for ev in h.events("task") if isinstance(ev, e.TaskCompleted) and ev.escrow_id}
    for ev in settled.values():  # and the other way round: nothing is paid that no completion earned
        if isinstance(ev, e.EscrowReleased) and (ev.escrow_id not in earned or
                                                 (earned[ev.escrow_id].task_id, earned[ev.escrow_id].agent_id) !=
                                                 (ev.task_id, ev.agent_id)):
            out.append(f"escrow {ev.escrow_id} released to {ev.agent_id} for task {ev.task_id} without its completion")
    return out


def log_problems(*record_lists, everything_ended: bool = True) -> list[str]:
    """Every problem of a whole log (the aggregates' event topics, in any grouping)."""
    h = history([r for records in record_lists for r in records])
    found = h.problems + capacity_problems(h) + unbacked_assignments(h) + unmet_requirements(h)
    found += unverified_results(h) + ledger_problems(h.events("ledger"), all_settled=everything_ended)
    if everything_ended:
        found += ending_problems(h) + payment_problems(h) + release_problems(h)
    return found


def evidence(records, problems: list[str], limit: int = 400) -> str:
    """The raw records of the tasks and escrows the problems name, in log order per partition: what a failed
    check's message shows, so a run that fails once can be read afterwards."""
    names = set()
    for token in re.findall(r"[\w:./-]+", " ".join(problems)):
        parts = token.split(":")
        names.update(":".join(parts[:n]) for n in range(1, len(parts) + 1))
    names -= {""}
    lines = [f"{r.where}: {r.event!r}" for r in records if r.event is not None and names & {
        getattr(r.event, "task_id", None), getattr(r.event, "escrow_id", None), *getattr(r.event, "lost_tasks", ())}]
    return "\n".join(problems + ["-- their records --"] + lines[:limit])


def last_problems(find, timeout: float, interval: float = 2.0) -> list[str]:
    """Calls `find` until it finds nothing or `timeout` passes (the last settlements may still be on their
    way when the tasks have ended), and returns what it found last."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(interval)
