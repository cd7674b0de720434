"""The matcher's newest snapshot against a fold of the log to the offsets it names.

The fold is the matcher's own (`Matcher.observe`), from the beginning of each task, agent and ledger events
partition to the snapshot's offset there. Compared: what the log alone decides (the market without what rounds
mark on it, the fabric figures, the correlation and trace maps, the alert rules' inputs). A snapshot that does not
decode or does not fit the log is a difference: a new leader would fold from the beginning.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aiokafka import TopicPartition

from ..codec import Codec
from ..domain.alerts import Alerting
from ..exceptions import CodecError
from ..kafka.access import KafkaAccess
from ..kafka.reader import end_offsets
from ..streams.alerting import rules_from
from ..streams.matcher import Matcher, input_partitions
from ..streams.matcher_snapshot import mismatch
from ..streams.matcher_state import Folded, decode
from ..streams.snapshots import newest
from ..topics import Topics
from .compare import Difference, compare

WHERE = "matcher.snapshot"


class _Inputs:
    """The alert rules' inputs folded as a leader's alerter folds them, proposing nothing."""
    ready = True

    def __init__(self, settings):
        self.alerting = Alerting(rules_from(settings))

    def observe(self, event) -> None:
        self.alerting.observe(event)


@dataclass
class MatcherCheck:
    problem: str = ""  # why the newest snapshot cannot be used, or empty
    snapshot: Folded | None = None
    fold: Matcher | None = None
    stops: dict[TopicPartition, int] = dataclasses.field(default_factory=dict)  # fold each partition below these

    def observe(self, record) -> None:
        if self.fold is not None and record.offset < self.stops.get(TopicPartition(record.topic, record.partition), 0):
            self.fold.observe(record)

    def differences(self) -> tuple[int, list[Difference]]:
        """Keys compared and the differences found."""
        if self.problem:
            return 0, [Difference(WHERE, "newest", "changed", f"{self.problem} (a new leader folds from the start)")]
        if self.snapshot is None:
            return 0, []
        pairs = sections(self.snapshot, self.fold.snapshot())
        found = [d for name, (kept, folded) in pairs.items() for d in compare(f"{WHERE} {name}", kept, folded)]
        return sum(len(kept.keys() | folded.keys()) for kept, folded in pairs.values()), found


def sections(kept: Folded, folded: Folded) -> dict[str, tuple[dict, dict]]:
    """Each part of the state the log alone decides, as key -> value maps of the snapshot and of the fold."""
    def market(f: Folded) -> dict[str, dict]:
        m = f.market
        waiting = {k: dataclasses.replace(w, proposed_to=None, proposed_at=0, noted="") for k, w in m.waiting.items()}
        return {"agents": m.agents, "waiting": waiting, "needs": m.needs, "reputation": m.records, "tried": m.tried,
                "refused": m.refused, "task seq": m.task_seq, "reserves": m.reserves, "ends": m.ends, "assigns": m.assigns,
                "slot agents": m.slot_agents}

    def rest(f: Folded) -> dict[str, dict]:
        s = f.stats
        completion = dataclasses.replace(s.completion, sum=round(s.completion.sum, 6))  # summed in reading order
        out = {"figures": {"ended": s.ended, "completion": completion}, "submitted at": s.submitted_at,
               "seen": s.seen, "correlations": f.correlations, "traces": f.traces}
        if f.alerts is not None:
            out |= {"alert agents": f.alerts.agents, "alert assignments": f.alerts.assigned,
                    "alert task seq": f.alerts.task_seq}
        return out
    a, b = {**market(kept), **rest(kept)}, {**market(folded), **rest(folded)}
    return {name: (a[name], b.get(name, {})) for name in a}


async def matcher_check(kafka: KafkaAccess, codec: Codec, topics: Topics, settings) -> MatcherCheck:
    """Loads the newest matcher snapshot and checks that it fits the log as it is after the snapshot was read."""
    parts = input_partitions(topics)
    try:
        latest = await newest(kafka, TopicPartition(topics.matcher_snapshots, 0))
        snapshot = None if latest is None else decode(latest[1])
    except CodecError as exc:
        return MatcherCheck(problem=f"the newest snapshot does not decode: {exc}")
    if snapshot is None:
        return MatcherCheck()
    # the ends after the snapshot was read: a running matcher writes on
    problem = await mismatch(kafka, snapshot, await end_offsets(kafka, parts, client_id="hive-replay"))
    if problem:
        return MatcherCheck(problem=f"the newest snapshot does not fit the log: {problem}")
    inputs = _Inputs(settings) if snapshot.alerts is not None else None
    fold = Matcher(codec, topics, settings, timeout_ms=0, alerter=inputs)
    fold.parts = parts
    return MatcherCheck(snapshot=snapshot, fold=fold,
                        stops={TopicPartition(p.topic, p.partition): p.offset for p in snapshot.positions})
