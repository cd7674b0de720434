"""The market's waiting tasks, kept in the queue's order as they change.

A matcher round offers free slots to the front of the queue; once every slot is taken it still looks at the
tasks whose wait has another reason than busy agents (new ones, mostly), but not at those parked because no
agent could take them while the agents stay as they were. Sorting every waiting task and walking all of them at
each round made a round cost the length of the queue; this dict keeps the order and those sets as tasks are
queued, changed and dropped, so a round costs what it offers and notes.
"""
from __future__ import annotations

from typing import Callable

from sortedcontainers import SortedList

BUSY = "every eligible agent is busy"
BULK = 64  # items an update sorts in at once rather than inserting one by one


def order_key(w, task_id: str | None = None) -> tuple:
    """Highest priority first, then first queued, then task id (the key it is kept under, which is its id): an order
    the log alone decides."""
    return (-w.need.priority, w.queued_at, w.task_id if task_id is None else task_id)


class WaitingQueue(dict):
    """task id -> Waiting. Beside the items: `order`, every task's order key, sorted; `unsettled`, the order keys of
    the tasks whose noted reason is not BUSY and that are not parked, sorted; `proposed`, the tasks with an offer
    out; `parked`, the tasks no agent could take at the fleet version noted, unchanged since. Every way of changing
    the dict keeps them. Sorted lists, not a list and sets: a task leaves the front of a long queue in log time, and
    a set emptied after a long burst would still be walked over its old size."""
    __slots__ = ("order", "keys_of", "unsettled", "proposed", "parked")

    def __init__(self, items=()):
        super().__init__()
        self.order = SortedList()
        self.keys_of: dict[str, tuple] = {}
        self.unsettled = SortedList()
        self.proposed: set[str] = set()
        self.parked: dict[str, int] = {}  # task id -> the fleet version at which no agent could take it
        self.update(items)

    def __reduce__(self):
        return (WaitingQueue, (dict(self),))

    def __setitem__(self, task_id: str, w) -> None:
        key = order_key(w, task_id)
        old = self.keys_of.get(task_id)
        if old != key:
            if old is not None:
                self.order.remove(old)
                self.unsettled.discard(old)
            self.order.add(key)
            self.keys_of[task_id] = key
        super().__setitem__(task_id, w)
        self.parked.pop(task_id, None)
        self._mark(task_id, key, w)

    def _mark(self, task_id: str, key: tuple, w) -> None:
        if w.noted.startswith(BUSY):
            self.unsettled.discard(key)
        elif key not in self.unsettled:
            self.unsettled.add(key)
        if w.proposed_to:
            self.proposed.add(task_id)
        else:
            self.proposed.discard(task_id)

    def __delitem__(self, task_id: str) -> None:
        super().__delitem__(task_id)
        self._forget(task_id)

    def pop(self, task_id: str, *default):
        if task_id not in self:
            if default:
                return default[0]
            raise KeyError(task_id)
        w = super().pop(task_id)
        self._forget(task_id)
        return w

    def popitem(self):
        task_id, w = super().popitem()
        self._forget(task_id)
        return task_id, w

    def setdefault(self, task_id: str, default=None):
        if task_id not in self:
            self[task_id] = default
        return self[task_id]

    def update(self, items=(), **more) -> None:
        items = dict(items, **more)
        if len(items) < BULK:
            for task_id, w in items.items():
                self[task_id] = w
            return
        for task_id in items.keys() & self.keys_of.keys():  # many at once (a snapshot restored): one sort
            old = self.keys_of.pop(task_id)
            self.order.remove(old)
            self.unsettled.discard(old)
        keys = {task_id: order_key(w, task_id) for task_id, w in items.items()}
        self.keys_of.update(keys)
        self.order.update(keys.values())
        self.unsettled.update(k for task_id, k in keys.items() if not items[task_id].noted.startswith(BUSY))
        super().update(items)
        for task_id in items.keys() & self.parked.keys():
            del self.parked[task_id]
        self.proposed.update(task_id for task_id, w in items.items() if w.proposed_to)
        self.proposed.difference_update(task_id for task_id, w in items.items() if not w.proposed_to)

    def __ior__(self, items):
        self.update(items)
        return self

    def clear(self) -> None:
        super().clear()
        self.order.clear()
        self.keys_of.clear()
        self.unsettled.clear()
        self.proposed.clear()
        self.parked.clear()

    def unsettled_after(self, key: tuple | None, keep: Callable[[object], bool]) -> list:
        """The unsettled tasks behind `key` in the queue (every one when None) that `keep` takes, in order."""
        after = self.unsettled if key is None else self.unsettled.irange(key, inclusive=(False, False))
        return [w for w in (self[k[2]] for k in after) if keep(w)]

    def park(self, task_id: str, version: int) -> None:
        """Leaves a task no agent could take out of the unsettled until it changes or `unpark` is called."""
        self.parked[task_id] = version
        self.unsettled.discard(self.keys_of[task_id])

    def unpark(self) -> None:
        """Every parked task unsettled again (the agents changed: their answers may too)."""
        for task_id in self.parked:
            key = self.keys_of[task_id]
            if key not in self.unsettled:
                self.unsettled.add(key)
        self.parked.clear()

    def _forget(self, task_id: str) -> None:
        key = self.keys_of.pop(task_id)
        self.order.remove(key)
        self.unsettled.discard(key)
        self.proposed.discard(task_id)
        self.parked.pop(task_id, None)
