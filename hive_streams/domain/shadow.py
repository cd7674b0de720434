"""Shadow replay of the scheduler: a recorded log's submissions and agents, placed by a matching policy in
simulated time.

The live matcher decides in rounds, each over the events it had read by then, and every offer it makes
records its round's id (`<matcher instance>/<round time>/<next offset read in each partition>`, see
streams/matcher.py). So the log says when each decision was taken and over which events: `in_reading_order`
puts the events back in the order the matcher read them, with each recorded round where it happened.

`simulate` folds that sequence into a `Market` with the given policy and runs a round at every recorded round,
at its recorded time. While the policy offers a task what the log's round offered it, the task stays in step
and its recorded consequences (slot and escrow answers, assignment, retries, end, release) are folded where the
log has them; under the recorded policy every task stays in step, so every recorded decision is made again
over the same state. A task the policy offers elsewhere (or at another round) leaves the log: from then on its
slot is taken at once, it is assigned as long after the round as the log's median offer took, it keeps its
recorded run time on its recorded agent, ends the way it ended, and its slot comes back as long after the
offer as the recorded one did (from the round that offered it to the first round that had read its end: the
live turnaround of a slot), followed by a round. A round id from a new matcher instance starts a fresh market
over everything read so far, as a new leader does.

Tasks the log never placed and ended (rejected, cancelled while queued, still running) are inputs only: their
events are folded as recorded and no policy moves them. A task no offer with a round id was made for (a log older
than round ids) is simulated from the start, its slot held from reservation to release. A simulated task
does not retry, and a slot it is offered is always granted.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from . import commands as c
from . import events as e
from .ledger import cents
from .matching import Market, Policy

END_EVENTS = (e.TaskCompleted, e.TaskFailed, e.TaskCancelled)
ANSWERS = (e.SlotReserved, e.SlotRefused, e.EscrowHeld, e.EscrowRefused)  # they carry the round that proposed them
RETRY_MS = 5000  # the live matcher's wait before offering a task again when no answer came


@dataclass(frozen=True)
class Round:
    """A moment the live matcher decided, over every event before it in the reading order."""
    round_id: str
    instance: str
    now: int
    read: tuple[int, ...] = ()  # next offset of each partition, in the matcher's partition order


def parse_round(round_id: str) -> Round | None:
    instance, _, rest = round_id.partition("/")
    now, _, read = rest.partition("/")
    try:
        return Round(round_id, instance, int(now), tuple(int(n) for n in read.split(",") if n))
    except ValueError:
        return None


def in_reading_order(records) -> list:
    """Events and Rounds in the order the live matcher read and decided. `records` are (partition index, offset,
    event), the partitions numbered as the matcher numbers them (task, agent, then ledger events). Events a round
    had read come before it; those that became visible together are merged by time. A log without round ids
    gets a round after every event."""
    by_part: dict[int, list] = {}
    rounds: dict[str, Round] = {}
    for part, offset, ev in records:
        by_part.setdefault(part, []).append((offset, ev))
        found = parse_round(getattr(ev, "round_id", "") or "")
        if found is not None:
            rounds[found.round_id] = found
    for items in by_part.values():
        items.sort(key=lambda item: item[0])
    cursor = {part: 0 for part in by_part}
    out: list = []

    def visible(limit) -> None:
        group = []
        for part, items in by_part.items():
            start = i = cursor[part]
            while i < len(items) and items[i][0] < limit(part):
                i += 1
            cursor[part] = i
            group.append([ev for _, ev in items[start:i]])
        out.extend(heapq.merge(*group, key=lambda ev: ev.at))

    if not rounds:
        for ev in heapq.merge(*([ev for _, ev in by_part[p]] for p in sorted(by_part)), key=lambda ev: ev.at):
            out += [ev, Round(f"each/{ev.at}", "each", ev.at)]
        return out
    began: dict[str, int] = {}  # each matcher instance's first round: a new leader's rounds come after the old one's
    for r in rounds.values():
        began[r.instance] = min(began.get(r.instance, r.now), r.now)
    for r in sorted(rounds.values(), key=lambda r: (began[r.instance], r.instance, r.now, sum(r.read))):
        visible(lambda part: r.read[part] if part < len(r.read) else 0)
        out.append(r)
    visible(lambda part: float("inf"))
    return out


@dataclass(frozen=True)
class Recorded:
    """One task as the log has it."""
    task_id: str
    queued: object  # the event that queued it: TaskSubmitted(queued=True) or TaskValidated
    deadline_at: int | None
    agent_id: str | None = None  # its first assignment
    placed_at: int = 0
    ended_at: int = 0
    end: object = None  # the event that ended it
    cost: int = 0  # cents paid to its agent (escrow released)
    held: int = 0  # how long its recorded agent's slot was held for it (reserved to released), when known
    occupancy: int = 0  # from the round that offered its slot to the first round that had read its end, when known
    agents: tuple[str, ...] = ()  # every assignment, in order

    @property
    def arrival(self) -> int:
        return self.queued.at

    @property
    def run_ms(self) -> int:
        """Assigned to ended."""
        return self.ended_at - self.placed_at

    @property
    def slot_ms(self) -> int:
        """How long its slot was out of the live matcher's hands."""
        return self.occupancy or self.held or self.run_ms


@dataclass(frozen=True)
class Placement:
    task_id: str
    agent_id: str | None  # None: never placed
    placed_at: int = 0
    ended_at: int = 0
    wait_ms: int = 0
    cost: int = 0
    missed: bool = False  # ended after its deadline
    agents: tuple[str, ...] = ()  # every assignment, in order (a retried task has several)


@dataclass(frozen=True)
class Log:
    tasks: dict[str, Recorded]  # the tasks it placed and ended
    steps: tuple  # events and Rounds in the live matcher's reading order
    offers: dict[str, frozenset] = field(default_factory=dict)  # round id -> the (task, agent) it offered
    unrounded: frozenset[str] = frozenset()  # tasks no offer with a round id was made for (an older log)
    assign_ms: int = 0  # median time from a round to the assignment it caused: a simulated offer takes as long


def read_log(steps) -> Log:
    """The shadow's inputs from `in_reading_order`'s sequence."""
    steps = tuple(steps)
    queued, assigned, ended, paid, deadlines, reserved, released = {}, {}, {}, {}, {}, {}, {}
    offers: dict[str, set] = {}
    offered_at, seen_end, unseen = {}, {}, []
    for ev in steps:
        if isinstance(ev, Round):
            seen_end.update((task_id, ev.now) for task_id in unseen)
            unseen = []
        elif isinstance(ev, END_EVENTS):
            unseen.append(ev.task_id)
        if isinstance(ev, e.SlotReserved) and (r := parse_round(ev.round_id)):
            offered_at.setdefault((ev.task_id, ev.agent_id), r.now)
        if isinstance(ev, ANSWERS) and ev.round_id:
            offers.setdefault(ev.round_id, set()).add((ev.task_id, ev.agent_id))
        if isinstance(ev, e.SlotReserved):
            reserved.setdefault((ev.task_id, ev.agent_id), ev.at)
        elif isinstance(ev, e.SlotReleased):
            released.setdefault((ev.task_id, ev.agent_id), ev.at)
        elif isinstance(ev, e.EscrowReleased):
            paid[ev.task_id] = paid.get(ev.task_id, 0) + ev.amount
        elif isinstance(ev, e.TaskSubmitted):
            deadlines[ev.task_id] = ev.deadline_at
            if ev.queued:
                queued.setdefault(ev.task_id, ev)
        elif isinstance(ev, e.TaskValidated):
            queued.setdefault(ev.task_id, ev)
        elif isinstance(ev, e.TaskAssigned):
            assigned.setdefault(ev.task_id, []).append(ev)
        elif isinstance(ev, END_EVENTS):
            ended.setdefault(ev.task_id, ev)
    tasks = {}
    delays = sorted(a.at - r.now for ev in steps if isinstance(ev, e.SlotReserved) and (r := parse_round(ev.round_id))
                    for a in assigned.get(ev.task_id, ()) if a.agent_id == ev.agent_id and a.at >= r.now)
    for task_id, q in queued.items():
        if task_id in assigned and task_id in ended:
            first, end = assigned[task_id][0], ended[task_id]
            slot = (task_id, first.agent_id)
            held = released[slot] - reserved[slot] if slot in reserved and slot in released else 0
            occupancy = seen_end[task_id] - offered_at[slot] if slot in offered_at and task_id in seen_end else 0
            tasks[task_id] = Recorded(task_id, q, deadlines.get(task_id), first.agent_id, first.at, end.at, end,
                                      paid.get(task_id, 0), max(0, held), max(0, occupancy),
                                      tuple(a.agent_id for a in assigned[task_id]))
    return Log(tasks, steps, {k: frozenset(v) for k, v in offers.items()},
               frozenset(tasks) - {task_id for offered in offers.values() for task_id, _ in offered},
               delays[len(delays) // 2] if delays else 0)


def recorded_placements(log: Log) -> dict[str, Placement]:
    return {t.task_id: Placement(t.task_id, t.agent_id, t.placed_at, t.ended_at, t.placed_at - t.arrival, t.cost,
                                 _missed(t.deadline_at, t.ended_at), t.agents) for t in log.tasks.values()}


def _missed(deadline_at: int | None, ended_at: int) -> bool:
    return deadline_at is not None and ended_at > deadline_at


def _owner(ev) -> str | None:
    """The task whose placement an event is a consequence of, if any."""
    if isinstance(ev, (e.TaskSubmitted, e.TaskValidated, e.TaskPinned)):
        return None  # inputs
    return getattr(ev, "task_id", None)


def _family(ev) -> tuple[str, str]:
    if isinstance(ev, e.AgentEvent):
        return "agent", ev.agent_id
    if isinstance(ev, e.LedgerEvent):
        return "ledger", ev.ledger_id
    return "task", ev.task_id


class _Shadow:
    """One simulation run: the market, the clock of simulated ends, and which tasks have left the log."""

    def __init__(self, log: Log, policy: Policy, timeout_ms: int, retry_ms: int):
        self.log, self.policy, self.timeout_ms, self.retry_ms = log, policy, timeout_ms, retry_ms
        self.market = Market(policy=policy)
        self.instance: str | None = None
        self.history: list = []  # every event folded, as folded: a new matcher instance folds them again
        self.last: dict[tuple[str, str], int] = {}  # the highest recorded seq folded per aggregate
        self.seqs: dict[tuple[str, str], int] = {}  # seqs as folded: simulated events sit between recorded ones
        self.left: set[str] = set(log.unrounded)  # tasks out of step with the log
        self.ends: list = []  # (time, order, task id, agent id)
        self.out: dict[str, Placement] = {}

    def fold(self, ev, recorded: bool = True) -> None:
        key = _family(ev)
        if recorded:
            if ev.seq <= self.last.get(key, 0):
                return  # a duplicate in the log
            self.last[key] = ev.seq
        self.seqs[key] = self.seqs.get(key, 0) + 1
        ev = replace(ev, seq=self.seqs[key])
        self.history.append(ev)
        self.market.observe(ev)
        if recorded:
            self._note(ev)

    def _note(self, ev) -> None:
        """Placements as the log makes them, for tasks in step."""
        task_id = getattr(ev, "task_id", None)
        if task_id not in self.log.tasks:
            return
        recorded = self.log.tasks[task_id]
        if isinstance(ev, e.TaskAssigned):
            p = self.out.get(task_id)
            if p is None:
                self.out[task_id] = Placement(task_id, ev.agent_id, ev.at, recorded.ended_at, ev.at - recorded.arrival,
                                              recorded.cost, _missed(recorded.deadline_at, recorded.ended_at),
                                              (ev.agent_id,))
            else:
                self.out[task_id] = replace(p, agents=p.agents + (ev.agent_id,))

    def step(self, item) -> None:
        if isinstance(item, Round):
            self._ends_until(item.now)
            self.round(item)
            return
        self._ends_until(item.at - 1)
        if _owner(item) in self.left and not isinstance(item, e.SlotReleased):
            return  # the simulation decides what happens to it now (a slot the log held for it is still released)
        self.fold(item)

    def _ends_until(self, until: int) -> None:
        while self.ends and self.ends[0][0] <= until:
            at, _, task_id, agent_id = heapq.heappop(self.ends)
            self.fold(replace(self.log.tasks[task_id].end, at=at, agent_id=agent_id), recorded=False)
            self.fold(e.SlotReleased(agent_id, 0, at, task_id), recorded=False)
            self.round(Round(f"released/{at}", self.instance or "", at))

    def finish(self) -> dict[str, Placement]:
        self._ends_until(float("inf"))
        for task_id in self.log.tasks:
            self.out.setdefault(task_id, Placement(task_id, None))
        return self.out

    def round(self, r: Round) -> None:
        if self.instance is not None and r.instance != self.instance and not r.round_id.startswith("released/"):
            self.market = Market(policy=self.policy)  # a new leader folds the log afresh
            for ev in self.history:
                self.market.observe(ev)
        if not r.round_id.startswith("released/"):
            self.instance = r.instance
        proposals = self.market.proposals(r.now, self.timeout_ms, self.retry_ms, r.round_id)
        offered = {p.task_id: p.agent_id for p in proposals if not isinstance(p, c.NoteWaiting)}
        logged = {task_id: agent_id for task_id, agent_id in self.log.offers.get(r.round_id, ())}
        for task_id in sorted(set(offered) | set(logged)):
            if task_id not in self.log.tasks:
                continue  # inputs only: the log decides for them
            if task_id not in self.left and offered.get(task_id) == logged.get(task_id):
                continue  # in step: its recorded answer follows in the log
            self.left.add(task_id)
            if task_id in offered:
                self._place(task_id, offered[task_id], r.now)

    def _place(self, task_id: str, agent_id: str, now: int) -> None:
        recorded, agent = self.log.tasks[task_id], self.market.agents[agent_id]
        self.fold(e.SlotReserved(agent_id, 0, now, task_id), recorded=False)
        self.fold(e.TaskAssigned(task_id, 0, now, agent_id, 1, ()), recorded=False)
        placed = now + self.log.assign_ms
        end = placed + recorded.run_ms
        cost, missed = cents(agent.price) if recorded.cost else 0, _missed(recorded.deadline_at, end)
        before = self.out.get(task_id)  # placed in step before, and retried elsewhere now
        self.out[task_id] = (replace(before, ended_at=end, cost=cost, missed=missed, agents=before.agents + (agent_id,))
                             if before else Placement(task_id, agent_id, placed, end, placed - recorded.arrival, cost,
                                                      missed, (agent_id,)))
        heapq.heappush(self.ends, (max(end, now + recorded.slot_ms), len(self.history), task_id, agent_id))


def simulate(log: Log, policy: Policy, timeout_ms: int, retry_ms: int = RETRY_MS) -> dict[str, Placement]:
    """Every recorded task placed by `policy`: recorded rounds at their recorded times over what they had read,
    and a round after each simulated release."""
    run = _Shadow(log, policy, timeout_ms, retry_ms)
    for item in log.steps:
        run.step(item)
    return run.finish()


@dataclass(frozen=True)
class Summary:
    """One run's figures: placements per agent, queue waits, cost (cents) and deadline misses."""
    tasks: int
    per_agent: dict[str, int]
    unplaced: int
    mean_wait_ms: float
    p95_wait_ms: int
    cost: int
    missed: int


def summarise(placements: dict[str, Placement]) -> Summary:
    placed = [p for p in placements.values() if p.agent_id is not None]
    per_agent: dict[str, int] = {}
    for p in placed:
        per_agent[p.agent_id] = per_agent.get(p.agent_id, 0) + 1
    waits = sorted(p.wait_ms for p in placed)
    p95 = waits[min(len(waits) - 1, (95 * len(waits) + 99) // 100 - 1)] if waits else 0
    return Summary(len(placements), dict(sorted(per_agent.items())), len(placements) - len(placed),
                   sum(waits) / len(waits) if waits else 0.0, p95, sum(p.cost for p in placed),
                   sum(p.missed for p in placed))


@dataclass(frozen=True)
class Differences:
    """How a shadow run differs from a base run, task by task; the counts add up by construction."""
    same: tuple[str, ...]  # placed on the same agent
    moved: tuple[tuple[str, str | None, str | None], ...]  # (task, base agent, shadow agent)
    newly_missed: tuple[str, ...]
    no_longer_missed: tuple[str, ...]
    waited_longer: int
    waited_less: int


def differences(base: dict[str, Placement], shadow: dict[str, Placement]) -> Differences:
    same, moved, newly, no_longer, longer, less = [], [], [], [], 0, 0
    for task_id in sorted(base):
        b, s = base[task_id], shadow[task_id]
        if b.agent_id == s.agent_id:
            same.append(task_id)
        else:
            moved.append((task_id, b.agent_id, s.agent_id))
        if s.missed and not b.missed:
            newly.append(task_id)
        elif b.missed and not s.missed:
            no_longer.append(task_id)
        longer += s.wait_ms > b.wait_ms
        less += s.wait_ms < b.wait_ms
    return Differences(tuple(same), tuple(moved), tuple(newly), tuple(no_longer), longer, less)
