"""The market's waiting tasks, kept in the queue's order as they change.

A matcher round offers free slots to the front of the queue; once every slot is taken it still looks at the
tasks whose wait has another reason than busy agents (new ones, mostly). A task a round found waiting is
settled on the agents that could take it: while they and it stay as they are, its answer changes only when one of
those agents has a free slot, and never when that set is empty (no agent can take it). Sorting every waiting task
and walking all of them at each round made a round cost the length of the queue; this dict keeps the order and
those sets as tasks are queued, changed and dropped, so a round costs what it offers and notes.
"""
from __future__ import annotations

import heapq
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
        key, busy, proposed = order_key(w, task_id), w.noted.startswith(BUSY), bool(w.proposed_to)  # may fail: first
        old = self.keys_of.get(task_id)
        if old is not None:
            self._unlist(task_id, old, dict.__getitem__(self, task_id))
            if old != key:
                self.order.remove(old)
        if old != key:
            self.order.add(key)
            self.keys_of[task_id] = key
        super().__setitem__(task_id, w)
        (self.loose if busy else self.unsettled).add(key)
        if proposed:
            self.proposed.add(task_id)
        else:
            self.proposed.discard(task_id)

    def __delitem__(self, task_id: str) -> None:
        self._forget(task_id, super().pop(task_id))

    def pop(self, task_id: str, *default):
        if task_id not in self:
            if default:
                return default[0]
            raise KeyError(task_id)
        w = super().pop(task_id)
        self._forget(task_id, w)
        return w

    def popitem(self):
        task_id, w = super().popitem()
        self._forget(task_id, w)
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
        # read before any change: a value that is not a Waiting fails here, leaving the queue as it was
        keys = {task_id: order_key(w, task_id) for task_id, w in items.items()}
        busy = {task_id for task_id, w in items.items() if w.noted.startswith(BUSY)}
        proposed = {task_id for task_id, w in items.items() if w.proposed_to}
        for task_id in items.keys() & self.keys_of.keys():  # many at once (a snapshot restored): one sort
            old = self.keys_of.pop(task_id)
            self._unlist(task_id, old, dict.__getitem__(self, task_id))
            self.order.remove(old)
        self.keys_of.update(keys)
        self.order.update(keys.values())
        self.loose.update(keys[task_id] for task_id in busy)
        self.unsettled.update(key for task_id, key in keys.items() if task_id not in busy)
        super().update(items)
        self.proposed.difference_update(items.keys() - proposed)
        self.proposed.update(proposed)

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
        settled on agents of which `any_free` says one has a free slot. A group is asked whether it still has one
        as its turn comes (slots only get taken in a round: a group without one is left for good). Only the task
        last yielded may change before the next is asked for."""
        sources = [self.unsettled, self.loose, *(keys for agents, keys in self.groups.items() if any_free(agents))]
        groups = {id(keys): agents for agents, keys in self.groups.items()}
        heads = [(keys[0], n) for n, keys in enumerate(sources) if keys]
        heapq.heapify(heads)
        while heads:
            key, n = heads[0]
            keys = sources[n]
            agents = groups.get(id(keys))
            if agents is not None and not any_free(agents):
                heapq.heappop(heads)  # its last free slot was taken: none of its tasks can be given one now
                continue
            yield key
            at = keys.bisect_right(key)  # the yielded task may have moved to another list, behind this key
            if at < len(keys):
                heapq.heapreplace(heads, (keys[at], n))
            else:
                heapq.heappop(heads)

    def settle(self, task_id: str, agents: frozenset[str]) -> None:
        """Leaves the task out of rounds until it changes, `unsettle` is called, or one of `agents` has a free
        slot (never, when there are none)."""
        key = self.keys_of[task_id]
        self._unlist(task_id, key, self[task_id])
        self.settled[task_id] = agents
        group = self.groups.get(agents)
        if group is None:
            group = self.groups[agents] = SortedList()
        group.add(key)

    def unsettle(self) -> None:
        """Every settled task asked again (the agents changed: their answers may too)."""
        busy, other = [], []
        for task_id in self.settled:
            (busy if self[task_id].noted.startswith(BUSY) else other).append(self.keys_of[task_id])
        self.loose.update(busy)  # one sort for many
        self.unsettled.update(other)
        self.settled.clear()
        self.groups.clear()

    def _unlist(self, task_id: str, key: tuple, w) -> None:
        """Takes the task (`w`: its value as listed) out of the list it is in."""
        agents = self.settled.pop(task_id, None)
        if agents is None:
            (self.loose if w.noted.startswith(BUSY) else self.unsettled).discard(key)
            return
        group = self.groups[agents]
        group.remove(key)
        if not group:
            del self.groups[agents]

    def _forget(self, task_id: str, w) -> None:
        key = self.keys_of.pop(task_id)
        self._unlist(task_id, key, w)
        self.order.remove(key)
        self.proposed.discard(task_id)
