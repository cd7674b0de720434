"""An aggregate as it was at a point of its history: its events folded up to a time or a seq."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Point:
    """Up to and including the events at or before `as_of` (epoch ms), or with seq at most `at_seq`; neither: all."""
    as_of: int | None = None
    at_seq: int | None = None

    def passed(self, event) -> bool:
        """Whether `event` comes after this point: it and every later event are left out."""
        if self.at_seq is not None and event.seq > self.at_seq:
            return True
        return self.as_of is not None and event.at > self.as_of


def fold_to(state, events: Iterable, evolve: Callable, point: Point):
    """`state` with the events before the point applied, in order, stopping at the first event past it."""
    for event in events:
        if point.passed(event):
            break
        state = evolve(state, event)
    return state
