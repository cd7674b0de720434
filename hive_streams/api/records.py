"""Log records as feeds see them: decoded once, rendered once, duplicates (same aggregate/seq) left out."""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import replace

from aiokafka import ConsumerRecord, TopicPartition

from ..codec import Codec, aggregate_id
from ..codec.avro import to_record
from ..domain.events import AgentStatusChanged
from ..domain.tenancy import task_tenant
from ..codec.strays import EVENT_TYPES, oversized, stray_reason
from ..exceptions import CodecError
from ..settings import Settings

RECORD_LIMIT = Settings.record_max_kb * 1024
LOOKBACK = 1000  # records per partition read before a start position only to recognise duplicates


class Item:
    """A feed's record. Its JSON is rendered on first use, once: a hub with no one watching renders nothing."""
    __slots__ = ("tp", "offset", "event", "kind", "tenant", "_data", "_public")

    def __init__(self, tp: TopicPartition, offset: int, event, kind: str, data: str | None = None,
                 tenant: str | None = None, public: str | None = None):
        self.tp, self.offset, self.event = tp, offset, event
        self.kind = kind  # the event's type name: the SSE `event:`
        self.tenant = tenant  # the tenant of the task it concerns; None: no task's (an agent's offer, its beats)
        self._data, self._public = data, public

    @property
    def data(self) -> str:
        """The event as JSON: the SSE `data:`."""
        if self._data is None:
            self._data = _json(render(self.event))
        return self._data

    @property
    def public(self) -> str:
        """The data for callers who see one tenant: no other tenant's task ids."""
        if self._public is None:
            event = self.event
            hidden = isinstance(event, AgentStatusChanged) and event.lost_tasks  # tasks of every tenant
            self._public = _json(render(replace(event, lost_tasks=()))) if hidden else self.data
        return self._public


def render(event) -> dict:
    return {"type": type(event).__name__, **to_record(event)}


def _json(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


def tenant_of_event(event) -> str | None:
    """A task event, or an agent's event about a task (a slot), belongs to that task's tenant."""
    task_id = getattr(event, "task_id", None)
    return None if task_id is None else task_tenant(task_id)


def item_of(tp: TopicPartition, offset: int, event) -> Item:
    return Item(tp, offset, event, type(event).__name__, tenant=tenant_of_event(event))


class SeqMemory:
    """The highest seq seen per aggregate, for the most recently seen `size` aggregates."""

    def __init__(self, size: int = 200_000):
        self.size = size
        self.seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def fresh(self, topic: str, aggregate: str, seq: int) -> bool:
        key, seen = (topic, aggregate), self.seen
        last = seen.pop(key, 0)  # put back below: now the most recently seen
        seen[key] = seq if seq > last else last
        if len(seen) > self.size:
            seen.popitem(last=False)
        return seq > last


def family_of(topic: str) -> type:
    """The event type of a `<prefix>.<family>.events` topic (object for any other)."""
    found = _FAMILIES.get(topic)
    if found is None:
        found = _FAMILIES[topic] = EVENT_TYPES.get(topic.rsplit(".", 2)[-2], object)
    return found


_FAMILIES: dict[str, type] = {}


def decode(codec: Codec, record: ConsumerRecord, memory: SeqMemory, record_limit: int = RECORD_LIMIT,
           tp: TopicPartition | None = None) -> Item | None:
    """None for a stray (not an event of its topic: the audit connector dead-letters those) or a duplicate event.
    `tp`: the record's partition, when the caller has it."""
    family = family_of(record.topic)
    try:
        event = None if oversized(record.value, record_limit) else codec.decode(record.value)
    except CodecError:
        return None
    if event is None or stray_reason(codec, family, record.key, record.value, record_limit, event):
        return None
    if not memory.fresh(record.topic, aggregate_id(event), event.seq):
        return None
    try:
        return item_of(tp or TopicPartition(record.topic, record.partition), record.offset, event)
    except (TypeError, ValueError):  # a value no feed can render
        return None


def lookback_start(beginning: int, start: int, lookback: int) -> tuple[int, bool]:
    """Where to begin reading so the records before `start` seed the duplicate memory.

    Returns (offset, complete): complete when the whole partition before `start` is read.
    """
    first = max(beginning, start - lookback)
    return first, first == beginning
