"""The marketplace: which queued task to offer to which agent, and why a task still waits.

Eligibility: every required capability at or above its proficiency, hardware that covers the
task's needs, a price within the budget, a registered key when the agent is priced (its results
are paid for only once their signature checks), and an agent that is online with a free slot.

Ranking (higher is better, ties broken by agent id):
    0.40 * proficiency (mean over required capabilities)
  + 0.30 * reputation (see reputation.py)
  + 0.15 * cheapness   (1 - price / budget; 1 without a budget)
  + 0.15 * idleness    (free slots / slots)
Agents that already failed or refused the task come after all others.

Proposals are advisory: the agent aggregate accepts or refuses a slot, so a stale view can
only cost a refusal, never an over-booked agent.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import agent as agent_agg
from . import commands as c
from . import events as e
from .ledger import LEDGER_ID, cents
from .model import Hardware, Requirement, capability_shortfall, needs
from .queue import BUSY, WaitingQueue
from .reputation import Record, outcome
from .task import NO_KEY

RELEASING = (e.TaskCompleted, e.TaskFailed, e.TaskCancelled, e.TaskRetryScheduled, e.TaskAssignmentDeclined)
WEIGHTS = {"proficiency": 0.40, "reputation": 0.30, "cheapness": 0.15, "idleness": 0.15}


@dataclass(frozen=True)
class Need:
    requires: tuple[Requirement, ...] = ()
    hardware: Hardware = field(default_factory=Hardware)
    budget: float | None = None
    priority: int = 0
    requester: str = ""


@dataclass(frozen=True)
class Waiting:
    task_id: str
    need: Need
    queued_at: int  # when the event that queued it happened: the queue's order (then the task id) is the log's
    not_before: int = 0
    pinned_to: str | None = None
    avoid: frozenset[str] = frozenset()
    proposed_to: str | None = None
    proposed_at: int = 0
    noted: str = ""


def turn(w: Waiting, now: int, retry_ms: int) -> bool:
    """Whether a round may look at the task: not backing off, and no offer of its own out and still fresh."""
    return now >= w.not_before and not (w.proposed_to and now - w.proposed_at < retry_ms)


def ineligible(need: Need, a: agent_agg.AgentState, now: int, timeout_ms: int) -> str:
    """Empty when the agent could serve the task (slots aside), else why not."""
    if not a.live(now, timeout_ms):
        return "no live agent"
    return (capability_shortfall(a.capabilities, need.requires) or a.hardware.covers(need.hardware)
            or (f"price {a.price} over budget {need.budget}" if need.budget is not None and a.price > need.budget else "")
            or unverifiable(a))


def refusal(w: Waiting, a: agent_agg.AgentState, now: int, timeout_ms: int) -> str:
    """Empty when the agent could serve the waiting task (slots aside), else why not. An operator's pin overrides
    the policy (capabilities, hardware), never liveness, slots, keys or budget."""
    if not w.pinned_to:
        return ineligible(w.need, a, now, timeout_ms)
    return (unverifiable(a) or pin_refusal(w.need, a)) if a.live(now, timeout_ms) else "no live agent"


def unverifiable(a: agent_agg.AgentState) -> str:
    """A priced agent must have registered a key: its results are paid for only once their signature checks."""
    return NO_KEY if cents(a.price) > 0 and not a.public_key else ""


def pin_refusal(need: Need, a: agent_agg.AgentState) -> str:
    """A pin overrides the policy, not the budget: it never holds more than the task's budget, and a task
    without a budget cannot be pinned to a priced agent."""
    price = cents(a.price)
    if price <= 0:
        return ""
    if need.budget is None:
        return f"price {a.price} and the task has no budget"
    return f"price {a.price} over budget {need.budget}" if price > cents(need.budget) else ""


@dataclass(frozen=True)
class Policy:
    """How agents are ranked for a task: a weighted sum, higher first. Subclass and override `score` for
    another shape; the live matcher and the shadow replay both rank through a Policy."""
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))
    name: str = "recorded"

    def score(self, need: Need, a: agent_agg.AgentState, reputation: float, free: int) -> float:
        have = {cap.name: cap.proficiency for cap in a.capabilities}
        proficiency = sum(have.get(r.name, 0.0) for r in need.requires) / len(need.requires) if need.requires else 1.0
        cheapness = 1.0 - a.price / need.budget if need.budget else 1.0
        idleness = free / a.slots if a.slots else 0.0
        w = self.weights
        return (w.get("proficiency", 0.0) * proficiency + w.get("reputation", 0.0) * reputation
                + w.get("cheapness", 0.0) * cheapness + w.get("idleness", 0.0) * idleness)


DEFAULT_POLICY = Policy()


def score(need: Need, a: agent_agg.AgentState, reputation: float, free: int) -> float:
    return DEFAULT_POLICY.score(need, a, reputation, free)


@dataclass
class Market:
    """Mutable read model owned by one matcher; rebuilt by folding the event log."""
    agents: dict[str, agent_agg.AgentState] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=WaitingQueue)  # a WaitingQueue: see __setattr__
    needs: dict[str, Need] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    tried: dict[str, frozenset[str]] = field(default_factory=dict)  # agents each task has been assigned to
    refused: dict[str, frozenset[str]] = field(default_factory=dict)  # agents that refused each task a slot
    task_seq: dict[str, int] = field(default_factory=dict)
    # (agent, task) -> slots reserved, and attempts ended (each reservation is answered by one ending event): a held
    # slot whose attempt has ended is being released, whichever of the two partitions was read first
    reserves: dict[tuple[str, str], int] = field(default_factory=dict)
    ends: dict[tuple[str, str], int] = field(default_factory=dict)
    # (agent, task) -> attempts assigned there, from the task's partition: one whose SlotReserved is not read yet
    # (both are written in one transaction when one worker decides the two) still takes the agent's slot
    assigns: dict[tuple[str, str], int] = field(default_factory=dict)
    slot_agents: dict[str, set[str]] = field(default_factory=dict)  # task -> agents with counts in reserves/ends
    dirty: bool = True  # something changed since the last proposals
    policy: Policy = DEFAULT_POLICY
    RETRY_FUNDS_MS = 2000

    def __post_init__(self) -> None:
        self.fleet: tuple = ()  # what the last round saw of the agents that decides whether they can take a task
        self._round_able: dict | None = None  # during a round: `_able`'s answers by what a task needs and its pin

    def __setattr__(self, name: str, value) -> None:
        if name == "waiting":  # whatever dict is assigned, the rounds read its order
            if isinstance(value, WaitingQueue):
                value.unsettle()  # settled against another market's agents, maybe
            else:
                value = WaitingQueue(value)
        object.__setattr__(self, name, value)

    def reputation(self, agent_id: str) -> float:
        return self.records.get(agent_id, Record()).score

    def observe(self, event) -> None:
        if not isinstance(event, e.AgentHeartbeat):  # beats change liveness only with time: the clock tick covers it
            self.dirty = True
        if isinstance(event, e.EscrowRefused) and event.task_id in self.waiting:
            w = self.waiting[event.task_id]  # the requester cannot pay: wait a round before asking again
            self.waiting[event.task_id] = replace(w, proposed_to=None, not_before=event.at + self.RETRY_FUNDS_MS)
            return
        if isinstance(event, e.LedgerEvent):
            return
        if isinstance(event, e.AgentRegistered) and agent_agg.offer_problem(event):
            return  # recorded before offers were checked: no round may fail on it
        if isinstance(event, e.AgentEvent):
            state = self.agents.get(event.agent_id) or agent_agg.AgentState(event.agent_id)
            self.agents[event.agent_id] = agent_agg.evolve(state, event)
            if isinstance(event, (e.SlotReserved, e.SlotReleased)) and event.seq > state.seq:
                self._count_slot(event)
            if isinstance(event, e.SlotRefused) and event.reason != "already held":
                # kept per task, not per wait: the same whichever partition the matcher read first
                self.refused[event.task_id] = self.refused.get(event.task_id, frozenset()) | {event.agent_id}
                if event.task_id in self.waiting:
                    self.waiting[event.task_id] = replace(self.waiting[event.task_id], proposed_to=None)
            return
        if event.seq <= self.task_seq.get(event.task_id, 0):
            return
        self.task_seq[event.task_id] = event.seq
        self._observe_task(event)

    def _observe_task(self, event) -> None:
        task_id = event.task_id
        if isinstance(event, RELEASING) and event.agent_id:
            # the ReleaseSlot that follows this event was committed with it, ahead of any offer made now
            # to the same agent's partition: the slot can be offered again without waiting for SlotReleased
            key = (event.agent_id, task_id)
            self.ends[key] = self.ends.get(key, 0) + 1
            if task_id not in self.needs:  # an end read after its task's last (a late decline): nothing else will
                self._forget_slots(task_id)
        found = outcome(event)
        if found:
            self.records[found[0]] = self.records.get(found[0], Record()).add(found[1])
        if isinstance(event, e.TaskValidated) or (isinstance(event, e.TaskSubmitted) and event.queued):
            requires = event.requires if isinstance(event, e.TaskValidated) else needs(event.nodes, event.requires)
            self.needs[task_id] = Need(requires, event.hardware, event.budget, event.priority, event.requester)
            self.waiting[task_id] = Waiting(task_id, self.needs[task_id], event.at)
        elif isinstance(event, e.TaskPinned) and task_id in self.waiting:
            self.waiting[task_id] = replace(self.waiting[task_id], pinned_to=event.agent_id, proposed_to=None)
        elif isinstance(event, e.TaskWaiting) and task_id in self.waiting:
            self.waiting[task_id] = replace(self.waiting[task_id], noted=event.reason)
        elif isinstance(event, e.TaskAssigned):
            key = (event.agent_id, task_id)
            self.assigns[key] = self.assigns.get(key, 0) + 1
            self.slot_agents.setdefault(task_id, set()).add(event.agent_id)
            self.waiting.pop(task_id, None)
            self.tried[task_id] = self.tried.get(task_id, frozenset()) | {event.agent_id}
        elif isinstance(event, e.TaskRetryScheduled) and task_id in self.needs:
            self.waiting[task_id] = Waiting(task_id, self.needs[task_id], event.at, event.not_before,
                                            avoid=self.tried.get(task_id, frozenset()) | {event.agent_id})
        elif isinstance(event, e.TERMINAL_TASK_EVENTS):  # nothing of the task is kept but its slots still out
            self.waiting.pop(task_id, None)
            self.needs.pop(task_id, None)
            self.tried.pop(task_id, None)
            self.refused.pop(task_id, None)
            self.task_seq.pop(task_id, None)  # its partition holds nothing after its end
            self._forget_slots(task_id)

    def _count_slot(self, event) -> None:
        if isinstance(event, e.SlotReserved):
            key = (event.agent_id, event.task_id)
            self.reserves[key] = self.reserves.get(key, 0) + 1
            self.slot_agents.setdefault(event.task_id, set()).add(event.agent_id)
        else:
            self._forget_slots(event.task_id)

    def _forget_slots(self, task_id: str) -> None:
        """Drops a task's slot counts at each agent once every slot it held there is back and every attempt there
        has ended, whichever of the two partitions was read last: balanced counts say nothing more."""
        agents = self.slot_agents.get(task_id, set())
        for agent_id in list(agents):
            key = (agent_id, task_id)
            holder = self.agents.get(agent_id)
            reserved = self.reserves.get(key, 0)
            if (self.ends.get(key, 0) == reserved and self.assigns.get(key, 0) <= reserved
                    and not (holder and task_id in holder.holding)):
                self.reserves.pop(key, None)
                self.ends.pop(key, None)
                self.assigns.pop(key, None)
                agents.discard(agent_id)
        if not agents:
            self.slot_agents.pop(task_id, None)

    def forget_ended(self) -> None:
        """Drops the refusals of tasks it no longer knows: one read after its task's end (another partition) would
        otherwise stay, and what is kept would depend on the order the partitions were read in."""
        self.refused = {task_id: agents for task_id, agents in self.refused.items() if task_id in self.needs}

    def releasing(self, agent_id: str) -> set[str]:
        """The tasks the agent still holds whose attempt there has ended."""
        a = self.agents.get(agent_id)
        return {t for t in (a.holding if a is not None else ()) if self.ends.get((agent_id, t), 0) >= self.reserves.get(
            (agent_id, t), 1)}

    def queued(self) -> list[Waiting]:
        """Highest priority first, then first queued: an order the log alone decides, not the order of reading it."""
        waiting = self.waiting
        return [waiting[key[2]] for key in waiting.order]

    def proposals(self, now: int, timeout_ms: int, retry_ms: int, round_id: str = "") -> list:
        """Commands to send now: slot requests, assignments of held slots, and waiting reasons. Each offer carries
        `round_id`, so the log records which round proposed it.

        The queue is read in its order while a slot is free, leaving out the tasks settled on agents none of which
        has one (their answer would be the same: see `_consider`). Once no slot is free, a task noted as waiting
        for busy agents has nothing new to hear, so only the unsettled others behind that point are looked at."""
        self._round_able = {}
        try:
            return self._round(now, timeout_ms, retry_ms, round_id)
        finally:
            self._round_able = None

    def _round(self, now: int, timeout_ms: int, retry_ms: int, round_id: str) -> list:
        waiting = self.waiting
        self._seen_fleet(now, timeout_ms)
        releasing = {a: self.releasing(a) for a in self.agents}
        free = self._free(now, timeout_ms, releasing)
        held = set().union(*(a.holding - releasing[a.agent_id] for a in self.agents.values()))
        out: list = []
        open_agents = {agent_id for agent_id, n in free.items() if n > 0}  # those with a free slot, as slots go
        last = None
        if open_agents:
            for key in waiting.asked(lambda agents: not open_agents.isdisjoint(agents)):
                last = key
                self._consider(waiting[key[2]], free, open_agents, held, now, timeout_ms, retry_ms, round_id, out)
                if not open_agents:
                    break
        if not open_agents:
            for w in waiting.unsettled_after(last):
                self._consider(w, free, open_agents, held, now, timeout_ms, retry_ms, round_id, out)
        return out

    def _seen_fleet(self, now: int, timeout_ms: int) -> None:
        """Unsettles every waiting task when what decides whether an agent can take a task changed since the last
        round: which agents there are, whether each is live, and its capabilities, hardware, price and key (not
        its slots: `proposals` reads those at every round)."""
        fleet = tuple((a.agent_id, a.live(now, timeout_ms), a.capabilities, a.hardware, a.price, a.public_key)
                      for a in self.agents.values())
        if fleet != self.fleet:
            self.fleet = fleet
            self.waiting.unsettle()

    def _consider(self, w: Waiting, free: dict[str, int], open_agents: set[str], held: set[str], now: int,
                  timeout_ms: int, retry_ms: int, round_id: str, out: list) -> None:
        """One waiting task's turn in a round: an offer (its agent leaves `open_agents` with its last free slot), a
        new reason noted, or nothing. A task that must wait is settled on the agents that could take it: until it
        or the fleet changes (`_seen_fleet`), or one of them has a free slot, its answer would be the same."""
        if not turn(w, now, retry_ms) or w.task_id in held:  # held: a slot is, the assignment is on its way
            return
        agent_id, reason, eligible = self.weigh(w, free, now, timeout_ms)
        if agent_id is None:
            if reason != w.noted:
                if w.noted or not reason.startswith(BUSY):  # a queue behind busy agents is no news
                    out.append(c.NoteWaiting(w.task_id, f"wait:{w.task_id}:{now}", now, reason))
                w = self.waiting[w.task_id] = replace(w, noted=reason)
            self.waiting.settle(w.task_id, eligible)  # none when no agent can take it
            return
        free[agent_id] -= 1
        self.waiting[w.task_id] = replace(w, proposed_to=agent_id, proposed_at=now)
        out.append(self._offer(w, self.agents[agent_id], now, round_id))
        if free[agent_id] <= 0:
            open_agents.discard(agent_id)

    def _offer(self, w: Waiting, a: agent_agg.AgentState, now: int, round_id: str):
        """A free agent gets a slot request; a priced one is paid for first: escrow, then the slot."""
        escrow_id = f"{w.task_id}:{a.agent_id}:{now}"
        amount = cents(a.price)
        if amount <= 0:
            return c.ReserveSlot(a.agent_id, f"reserve:{escrow_id}", now, w.task_id, round_id=round_id)
        return c.HoldEscrow(LEDGER_ID, f"hold:{escrow_id}", now, escrow_id, w.task_id, w.need.requester, a.agent_id,
                            amount, round_id)

    def _free(self, now: int, timeout_ms: int, releasing: dict[str, set[str]] | None = None) -> dict[str, int]:
        """Each live agent's slots less those held for attempts still on and the offers not yet answered (an offer
        whose task the agent still holds for an attempt that has ended is one: that hold is the old attempt's)."""
        if releasing is None:
            releasing = {a: self.releasing(a) for a in self.agents}
        pending: dict[str, int] = {}
        waiting = self.waiting
        for w in map(waiting.__getitem__, waiting.proposed):
            agent = self.agents.get(w.proposed_to)
            if agent is None or w.task_id not in agent.holding or w.task_id in releasing[w.proposed_to]:
                pending[w.proposed_to] = pending.get(w.proposed_to, 0) + 1
        for (agent_id, task_id), assigned in self.assigns.items():
            unseen = assigned - self.reserves.get((agent_id, task_id), 0)
            if unseen > 0:
                pending[agent_id] = pending.get(agent_id, 0) + unseen
        return {a.agent_id: a.slots - len(a.holding) + len(releasing[a.agent_id]) - pending.get(a.agent_id, 0)
                for a in self.agents.values() if a.live(now, timeout_ms)}

    def choose(self, w: Waiting, free: dict[str, int], now: int, timeout_ms: int) -> tuple[str | None, str]:
        """The best agent for a waiting task, or None and the reason it must wait."""
        agent_id, reason, _ = self.weigh(w, free, now, timeout_ms)
        return agent_id, reason

    def weigh(self, w: Waiting, free: dict[str, int], now: int, timeout_ms: int
              ) -> tuple[str | None, str, frozenset[str]]:
        """`choose`'s answer and, when the task must wait, the agents that could take it, slots aside."""
        able, able_ids, refusals = self._able(w, now, timeout_ms)
        best, avoid = None, None
        for a in able:
            slots = free.get(a.agent_id, 0)
            if slots <= 0:
                continue
            if avoid is None:
                avoid = w.avoid | self.refused.get(w.task_id, frozenset())
            key = (a.agent_id in avoid, -self.policy.score(w.need, a, self.reputation(a.agent_id), slots), a.agent_id)
            if best is None or key < best[0]:
                best = (key, a.agent_id)
        if best:
            return best[1], "", frozenset()
        if able:  # every one of them busy
            return None, BUSY + (f" (pinned to {w.pinned_to})" if w.pinned_to else ""), able_ids
        if w.pinned_to and w.pinned_to not in self.agents:
            return None, f"pinned to unknown agent {w.pinned_to}", able_ids
        return None, "no eligible agent: " + refusals, able_ids

    def _able(self, w: Waiting, now: int, timeout_ms: int) -> tuple[list, frozenset[str], str]:
        """The agents that could take the task, slots aside (in the market's order, and their ids), and why the
        others cannot. Within a round it depends only on what the task needs and its pin: the answer is kept for
        the tasks that share them."""
        # repr: budgets 0.0 and -0.0 are equal but print apart in a refusal
        key = (w.need.requires, w.need.hardware, repr(w.need.budget), w.pinned_to)
        kept = self._round_able
        found = kept.get(key) if kept is not None else None
        if found is None:
            candidates = ([self.agents[w.pinned_to]] if w.pinned_to in self.agents else [] if w.pinned_to
                          else self.agents.values())
            able, reasons = [], []
            for a in candidates:
                why = refusal(w, a, now, timeout_ms)
                if why:
                    reasons.append(f"{a.agent_id}: {why}")
                else:
                    able.append(a)
            refusals = "; ".join(sorted(reasons)[:3]) if reasons else "no agents registered"
            found = (able, frozenset(a.agent_id for a in able), refusals)
            if kept is not None:
                kept[key] = found
        return found
