"""What one SSE feed may cost: open feeds per principal, and how far back a resumed feed may reach."""
from __future__ import annotations

from collections import Counter

from aiokafka import TopicPartition
from sse_starlette.sse import EventSourceResponse

from .errors import RequestError

EXPORT_HINT = ("read older history with `hive-streams export --out DIR` (Avro files) or `hive-streams tail`, "
               "then follow the feed from now")


class FeedSlots:
    """Open feeds per principal (its account) in this process."""

    def __init__(self, per_principal: int):
        self.per_principal = per_principal
        self.open: Counter[str] = Counter()

    def take(self, account: str) -> None:
        if self.open[account] >= self.per_principal:
            raise RequestError(429, "$", f"{account} has {self.open[account]} feeds open, the most one principal may "
                                         "have: close one first", {"Retry-After": "5"})
        self.open[account] += 1

    def release(self, account: str) -> None:
        self.open[account] -= 1
        if self.open[account] <= 0:
            del self.open[account]


class CountedFeed(EventSourceResponse):
    """An SSE response that gives its slot back however it ends."""

    def __init__(self, *args, release, **kwargs):
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def events_behind(ends: dict[TopicPartition, int], positions: dict[TopicPartition, int]) -> int:
    """Records between each position and the log's end, summed over the partitions."""
    return sum(max(0, ends.get(tp, 0) - offset) for tp, offset in positions.items())


def check_reach(ends: dict[TopicPartition, int], positions: dict[TopicPartition, int], most: int) -> None:
    behind = events_behind(ends, positions)
    if behind > most:
        raise RequestError(410, "last_event_id", f"this position is {behind} events behind the log's end; a feed "
                                                 f"catches up at most {most}: {EXPORT_HINT}")
