"""An example analytics consumer: what each tenant spent per day, from the ledger and task events.

    python -m connectors.daily_costs [--out FILE] [--once]

It logs in as the read-only `analyst` role with its own consumer group (`<prefix>.analyst.daily-costs`).
Its summary and the offsets it reflects are one JSON file, replaced atomically; it resumes from the
file's offsets and then commits them to its group, so the group's lag shows how far behind it is.
A record seen twice (same aggregate and seq) is counted once.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from hive_streams import settings as settings_mod
from hive_streams.analytics.filters import tenant_of
from hive_streams.analytics.log import partitions
from hive_streams.codec import default_codec
from hive_streams.domain import events as e
from hive_streams.exceptions import CodecError
from hive_streams.kafka.access import access_for
from hive_streams.kafka.acls import analyst_group_prefix
from hive_streams.kafka.clients import consumer
from hive_streams.kafka.reader import EMPTY_FETCHES_AT_MARKER
from hive_streams.topics import Topics

NAME = "daily-costs"
SAVE_EVERY_SECONDS = 5.0
POLL_MS = 500

log = logging.getLogger("hive_streams.connectors.daily_costs")


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date().isoformat()


@dataclass
class DailyCosts:
    """day -> tenant -> {submitted, completed, failed, spent, fees, refunded} (money in cents). Pure."""
    days: dict = field(default_factory=dict)
    tasks: dict = field(default_factory=dict)  # task -> tenant
    escrows: dict = field(default_factory=dict)  # escrow -> tenant
    seen: dict = field(default_factory=dict)  # aggregate -> highest seq applied

    def _row(self, at: int, tenant: str) -> dict:
        return self.days.setdefault(day_of(at), {}).setdefault(tenant, dict.fromkeys(
            ("submitted", "completed", "failed", "spent", "fees", "refunded"), 0))

    def apply(self, ev) -> None:
        aggregate = f"task:{ev.task_id}" if isinstance(ev, e.TaskEvent) else f"ledger:{getattr(ev, 'ledger_id', '')}"
        if not isinstance(ev, (e.TaskEvent, e.LedgerEvent)) or ev.seq <= self.seen.get(aggregate, 0):
            return
        self.seen[aggregate] = ev.seq
        if isinstance(ev, e.TaskSubmitted):
            self.tasks[ev.task_id] = tenant_of(ev.requester)
            self._row(ev.at, self.tasks[ev.task_id])["submitted"] += 1
        elif isinstance(ev, (e.TaskCompleted, e.TaskFailed)) and ev.task_id in self.tasks:
            self._row(ev.at, self.tasks[ev.task_id])["completed" if isinstance(ev, e.TaskCompleted) else "failed"] += 1
        elif isinstance(ev, e.EscrowHeld):
            self.escrows[ev.escrow_id] = tenant_of(ev.requester)
        elif isinstance(ev, e.EscrowReleased) and ev.escrow_id in self.escrows:
            row = self._row(ev.at, self.escrows[ev.escrow_id])
            row["spent"] += ev.amount
            row["fees"] += ev.fee
        elif isinstance(ev, e.EscrowRefunded):
            self._row(ev.at, tenant_of(ev.requester))["refunded"] += ev.amount

    def to_json(self) -> dict:
        return {"days": self.days, "tasks": self.tasks, "escrows": self.escrows, "seen": self.seen}

    @classmethod
    def from_json(cls, data: dict) -> "DailyCosts":
        return cls(data["days"], data["tasks"], data["escrows"], data["seen"])


def load(path: Path) -> tuple[DailyCosts, dict[str, int]]:
    if not path.exists():
        return DailyCosts(), {}
    data = json.loads(path.read_text())
    return DailyCosts.from_json(data["summary"]), data["offsets"]


def save(path: Path, costs: DailyCosts, offsets: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"summary": costs.to_json(), "offsets": offsets}, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _where(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


async def run(settings, path: Path, once: bool = False, stop: asyncio.Event | None = None) -> DailyCosts:
    topics = Topics.from_settings(settings)
    kafka = access_for(settings, "analyst")
    group = analyst_group_prefix(topics) + NAME
    codec = default_codec()
    costs, offsets = load(path)
    tps = await partitions(kafka, [topics.task_events, topics.ledger_events])
    reader = consumer(kafka, group_id=group, client_id=f"hive-{NAME}")
    await reader.start()
    try:
        reader.assign(tps)
        for tp in tps:
            reader.seek(tp, offsets[_where(tp)]) if _where(tp) in offsets else await reader.seek_to_beginning(tp)
        ends = await reader.end_offsets(tps) if once else {}
        empty = dict.fromkeys(tps, 0)
        loop = asyncio.get_running_loop()
        saved_at = loop.time()
        while not (stop and stop.is_set()):
            got = await reader.getmany(timeout_ms=POLL_MS)
            for tp in tps:
                empty[tp] = 0 if got.get(tp) else empty[tp] + 1
            for tp, batch in got.items():
                for record in batch:
                    try:
                        costs.apply(codec.decode(record.value))
                    except CodecError as exc:
                        log.warning("skipping %s[%s]@%s: %s", tp.topic, tp.partition, record.offset, exc)
                offsets[_where(tp)] = await reader.position(tp)
            caught_up = once and all([await _at_end(reader, tp, ends[tp], empty[tp]) for tp in tps])
            if caught_up or loop.time() - saved_at > SAVE_EVERY_SECONDS:
                save(path, costs, offsets)
                await reader.commit({tp: OffsetAndMetadata(offsets[_where(tp)], "") for tp in tps
                                     if _where(tp) in offsets})
                saved_at = loop.time()
            if caught_up:
                break
    finally:
        await reader.stop()
    return costs


async def _at_end(reader, tp: TopicPartition, end: int, empty_polls: int) -> bool:
    """Read to the end seen at the start (a partition ending in a transaction marker may stay one short)."""
    position = await reader.position(tp)
    return position >= end or (position == end - 1 and empty_polls >= EMPTY_FETCHES_AT_MARKER)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m connectors.daily_costs", description=__doc__.split("\n")[0])
    s = settings_mod.load()
    parser.add_argument("--out", type=Path, default=Path(s.home) / "analytics" / f"{NAME}.json")
    parser.add_argument("--once", action="store_true", help="read to the end, write the summary and stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def until_signal():
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        costs = await run(s, args.out, args.once, stop)
        print(json.dumps(costs.days, indent=1, sort_keys=True))
    asyncio.run(until_signal())


if __name__ == "__main__":
    main()
