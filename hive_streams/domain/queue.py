"""The market's waiting tasks, kept in the queue's order as they change.

A matcher round offers free slots to the front of the queue; once every slot is taken it still looks at the
tasks whose wait has another reason than busy agents (new ones, mostly). A task a round found waiting is
settled on the agents that could take it: while they and it stay as they are, its answer changes only when one of
those agents has a free slot, and never when that set is empty (no agent can take it). Sorting every waiting task
and walking all of them at each round made a round cost the length of the queue; this dict keeps the order and
those sets as tasks are queued, changed and dropped, so a round costs what it offers and notes.
"""
from __future__ import annotations

from typing import Callable, Iterator

from sortedcontainers import SortedList

BUSY = "every eligible agent is busy"
BULK = 64  # items an update sorts in at once rather than inserting one by one


def order_key(w, task_id: str | None = None) -> tuple:
    """Highest priority first, then first queued, then task id (the key it is kept under, which is its id): an order
    the log alone decides."""
    return (-w.need.priority, w.queued_at, w.task_id if task_id is None else task_id)


class WaitingQueue(dict):
    """task id -> Waiting. Beside the items, each a SortedList of order keys: `order`, every task; `unsettled`, the
    tasks not settled whose noted reason is not BUSY; `loose`, those not settled noted BUSY; and `groups`, the settled
    tasks by the agents they are settled on (`settled`: task id -> those agents). `proposed`: the tasks with an offer
    out. Every way of changing the dict keeps them, and a change to a task unsettles it. Sorted lists, not a list and
    sets: a task leaves the front of a long queue in log time, and a set emptied after a long burst would still be
    walked over its old size."""
    __slots__ = ("order", "keys_of", "unsettled", "loose", "settled", "groups", "proposed")

    def __init__(self, items=()):
        super().__init__()
        self.order = SortedList()
        self.keys_of: dict[str, tuple] = {}
        self.unsettled = SortedList()
        self.loose = SortedList()
        self.settled: dict[str, frozenset[str]] = {}
        self.groups: dict[frozenset[str], SortedList] = {}
        self.proposed: set[str] = set()
        self.update(items)

    def __reduce__(self):
        return (WaitingQueue, (dict(self),))

    def __setitem__(self, task_id: str, w) -> None:
        key = order_key(w, task_id)
        old = self.keys_of.get(task_id)
        if old is not None:
            self._unlist(task_id, old)
            if old != key:
                self.order.remove(old)
        if old != key:
            self.order.add(key)
            self.keys_of[task_id] = key
        super().__setitem__(task_id, w)
        (self.loose if w.noted.startswith(BUSY) else self.unsettled).add(key)
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

    def setdefault(self, task_id: str, default):
        """As dict's, but a default is required: every value is a Waiting."""
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
            self._unlist(task_id, old)
            self.order.remove(old)
        keys = {task_id: order_key(w, task_id) for task_id, w in items.items()}
        self.keys_of.update(keys)
        self.order.update(keys.values())
        busy = {task_id for task_id, w in items.items() if w.noted.startswith(BUSY)}
        self.loose.update(keys[task_id] for task_id in busy)
        self.unsettled.update(key for task_id, key in keys.items() if task_id not in busy)
        super().update(items)
        self.proposed.update(task_id for task_id, w in items.items() if w.proposed_to)
        self.proposed.difference_update(task_id for task_id, w in items.items() if not w.proposed_to)

    def __ior__(self, items):
        self.update(items)
        return self

    def clear(self) -> None:
        super().clear()
        for kept in (self.order, self.keys_of, self.unsettled, self.loose, self.settled, self.groups, self.proposed):
            kept.clear()

    def unsettled_after(self, key: tuple | None) -> list:
        """The unsettled tasks behind `key` in the queue (every one when None), in order."""
        after = self.unsettled if key is None else self.unsettled.irange(key, inclusive=(False, False))
        return [self[k[2]] for k in after]

    def asked(self, any_free: Callable[[frozenset[str]], bool]) -> Iterator[tuple]:
        """The order keys, in order, of the tasks a round with a free slot asks: the unsettled, the loose and those
        settled on agents of which `any_free` says one has a free slot, asked as they come (slots only get taken in
        a round: a group without one is left for good). The lists may change between two keys."""
        sources = [(self.unsettled, None), (self.loose, None)]
        sources += [(keys, agents) for agents, keys in self.groups.items() if any_free(agents)]
        key = None
        while True:
            sources = [(keys, agents) for keys, agents in sources if agents is None or any_free(agents)]
            nearest = None
            for keys, _ in sources:
                at = 0 if key is None else keys.bisect_right(key)
                if at < len(keys) and (nearest is None or keys[at] < nearest):
                    nearest = keys[at]
            if nearest is None:
                return
            key = nearest
            yield key

    def settle(self, task_id: str, agents: frozenset[str]) -> None:
        """Leaves the task out of rounds until it changes, `unsettle` is called, or one of `agents` has a free
        slot (never, when there are none)."""
        key = self.keys_of[task_id]
        self._unlist(task_id, key)
        self.settled[task_id] = agents
        self.groups.setdefault(agents, SortedList()).add(key)

    def unsettle(self) -> None:
        """Every settled task asked again (the agents changed: their answers may too)."""
        for task_id in list(self.settled):
            key = self.keys_of[task_id]
            self._unlist(task_id, key)
            (self.loose if self[task_id].noted.startswith(BUSY) else self.unsettled).add(key)

    def _unlist(self, task_id: str, key: tuple) -> None:
        agents = self.settled.pop(task_id, None)
        if agents is None:
            self.unsettled.discard(key)
            self.loose.discard(key)
            return
        group = self.groups[agents]
        group.remove(key)
        if not group:
            del self.groups[agents]

    def _forget(self, task_id: str) -> None:
        key = self.keys_of.pop(task_id)
        self._unlist(task_id, key)
        self.order.remove(key)
        self.proposed.discard(task_id)
