"""The market's waiting tasks, kept in the queue's order as they change.

A matcher round offers free slots to the front of the queue; once every slot is taken it still looks at the
tasks whose wait has another reason than busy agents (new ones, ineligible ones). Sorting every waiting task
and walking all of them at each round made a round cost the length of the queue; this dict keeps the order
and those two sets as tasks are queued, changed and dropped, so a round costs what it offers and notes.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort

BUSY = "every eligible agent is busy"
BULK = 64  # items an update sorts in at once rather than inserting one by one


def order_key(w) -> tuple:
    """Highest priority first, then first queued, then task id: an order the log alone decides."""
    return (-w.need.priority, w.queued_at, w.task_id)


class WaitingQueue(dict):
    """task id -> Waiting. Beside the items: `order`, every task's order key, sorted; `unsettled`, the tasks whose
    noted reason is not BUSY; `proposed`, the tasks with an offer out. Every way of changing the dict keeps them."""
    __slots__ = ("order", "keys_of", "unsettled", "proposed")

    def __init__(self, items=()):
        super().__init__()
        self.order: list[tuple] = []
        self.keys_of: dict[str, tuple] = {}
        self.unsettled: set[str] = set()
        self.proposed: set[str] = set()
        self.update(items)

    def __reduce__(self):
        return (WaitingQueue, (dict(self),))

    def __setitem__(self, task_id: str, w) -> None:
        key = order_key(w)
        old = self.keys_of.get(task_id)
        if old != key:
            if old is not None:
                self._unorder(old)
            insort(self.order, key)
            self.keys_of[task_id] = key
        super().__setitem__(task_id, w)
        self._mark(task_id, w)

    def _mark(self, task_id: str, w) -> None:
        if w.noted.startswith(BUSY):
            self.unsettled.discard(task_id)
        else:
            self.unsettled.add(task_id)
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
        for task_id, w in items.items():  # many at once (a snapshot restored): one sort, not an insert each
            self.keys_of[task_id] = order_key(w)
            super().__setitem__(task_id, w)
            self._mark(task_id, w)
        self.order = sorted(self.keys_of.values())

    def __ior__(self, items):
        self.update(items)
        return self

    def clear(self) -> None:
        super().clear()
        self.order.clear()
        self.keys_of.clear()
        self.unsettled.clear()
        self.proposed.clear()

    def unsettled_after(self, key: tuple | None) -> list:
        """The unsettled tasks behind `key` in the queue (every one when None), in order."""
        keys = sorted(self.keys_of[t] for t in self.unsettled)
        return [self[k[2]] for k in keys[0 if key is None else bisect_right(keys, key):]]

    def _forget(self, task_id: str) -> None:
        self._unorder(self.keys_of.pop(task_id))
        self.unsettled.discard(task_id)
        self.proposed.discard(task_id)

    def _unorder(self, key: tuple) -> None:
        i = bisect_left(self.order, key)
        del self.order[i]
