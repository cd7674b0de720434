"""Resumable feed positions carried in SSE `id:` fields; each one names Kafka offsets.

- a task feed reads one partition: `partition:offset:seq` of the last frame sent;
- agent and cluster feeds read every partition of both event topics: the next offset to read
  on each, `t=<task partitions>;a=<agent partitions>`, e.g. `t=12,0,7,3;a=40,2,9,0`.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from ..topics import Topics


class PositionError(ValueError):
    pass


@dataclass(frozen=True)
class TaskPosition:
    partition: int
    offset: int
    seq: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> "TaskPosition":
        try:
            partition, offset, seq = (int(part) for part in text.split(":"))
        except ValueError:
            raise PositionError(f"{text!r} is not partition:offset:seq") from None
        if min(partition, offset, seq) < 0:
            raise PositionError(f"{text!r} has a negative part")
        return cls(partition, offset, seq)


class VectorCodec:
    """Next offsets per partition of the task and agent event topics, as `t=..;a=..`, and of the alerts
    (`;x=..`) when the feeds carry them; a position without `x` starts the alerts at their beginning."""

    OPTIONAL = frozenset({"x"})

    def __init__(self, topics: Topics, partitions: dict[str, int]):
        self.names = {"t": topics.task_events, "a": topics.agent_events}
        if topics.alerts in partitions:
            self.names["x"] = topics.alerts
        self.partitions = partitions  # topic -> partition count

    def all(self) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for topic in self.names.values() for p in range(self.partitions[topic])]

    def encode(self, offsets: dict[TopicPartition, int]) -> str:
        parts = []
        for letter, topic in self.names.items():
            values = (offsets.get(TopicPartition(topic, p), 0) for p in range(self.partitions[topic]))
            parts.append(f"{letter}=" + ",".join(map(str, values)))
        return ";".join(parts)

    def decode(self, text: str) -> dict[TopicPartition, int]:
        """Partitions the text does not name start at 0: they were added after it was written."""
        found: dict[str, list[int]] = {}
        try:
            for part in text.split(";"):
                letter, _, values = part.partition("=")
                found[letter] = [int(v) for v in values.split(",")]
        except ValueError:
            raise PositionError(f"{text!r} is not t=<offsets>;a=<offsets>") from None
        if not set(self.names) - self.OPTIONAL <= set(found) <= set(self.names) or any(
                o < 0 for values in found.values() for o in values):
            raise PositionError(f"{text!r} is not t=<offsets>;a=<offsets>")
        out = {}
        for letter, topic in self.names.items():
            values = found.get(letter, [])
            for p in range(self.partitions[topic]):
                out[TopicPartition(topic, p)] = values[p] if p < len(values) else 0
        return out


class VectorIds:
    """The ids of one feed's frames: one partition moves per frame, so only that part is re-rendered."""

    def __init__(self, codec: VectorCodec, offsets: dict[TopicPartition, int]):
        tps = codec.all()
        self.index = {tp: i for i, tp in enumerate(tps)}
        self.values = [str(offsets.get(tp, 0)) for tp in tps]
        self.split = sum(1 for tp in tps if tp.topic == codec.names["t"])

    def after(self, tp: TopicPartition, offset: int) -> str:
        """The id once the record at `offset` on `tp` is sent."""
        self.values[self.index[tp]] = str(offset + 1)
        return "t=" + ",".join(self.values[:self.split]) + ";a=" + ",".join(self.values[self.split:])
