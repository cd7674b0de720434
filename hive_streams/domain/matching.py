"""The matcher's read model and policy: which queued task to propose to which agent.

Proposals are advisory; the agent aggregate accepts or refuses a slot, so a stale view
can only cost a refusal, never an over-booked agent.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import agent as agent_agg
from . import commands as c
from . import events as e
from .model import Offer, Requirement


@dataclass(frozen=True)
class Waiting:
    task_id: str
    priority: int
    order: int
    requires: tuple[Requirement, ...]
    proposed_to: str | None = None
    proposed_at: int = 0
    refused_by: frozenset[str] = frozenset()


@dataclass
class Market:
    """Mutable read model owned by one matcher; rebuilt by folding the event log."""
    agents: dict[str, agent_agg.AgentState] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    task_seq: dict[str, int] = field(default_factory=dict)
    order: int = 0

    def observe(self, event) -> None:
        if isinstance(event, e.AgentEvent):
            state = self.agents.get(event.agent_id) or agent_agg.AgentState(event.agent_id)
            self.agents[event.agent_id] = agent_agg.evolve(state, event)
            if isinstance(event, e.SlotRefused) and event.task_id in self.waiting:
                w = self.waiting[event.task_id]
                self.waiting[event.task_id] = replace(w, proposed_to=None, refused_by=w.refused_by | {event.agent_id})
            return
        if event.seq <= self.task_seq.get(event.task_id, 0):
            return
        self.task_seq[event.task_id] = event.seq
        if isinstance(event, e.TaskValidated):
            self.order += 1
            self.waiting[event.task_id] = Waiting(event.task_id, event.priority, self.order, event.requires)
        elif isinstance(event, (e.TaskAssigned, *e.TERMINAL_TASK_EVENTS)):
            self.waiting.pop(event.task_id, None)

    def proposals(self, now: int, timeout_ms: int, retry_ms: int) -> list[c.ReserveSlot | c.AssignTask]:
        """Commands to send now: a slot request, or the assignment when a slot is already held."""
        free = {a.agent_id: a.free_slots - self._pending(a.agent_id) for a in self.agents.values()
                if a.live(now, timeout_ms)}
        out = []
        for w in self.queued():
            if w.proposed_to and now - w.proposed_at < retry_ms:
                continue
            holder = next((a.agent_id for a in self.agents.values() if w.task_id in a.holding), None)
            if holder is not None:
                self.waiting[w.task_id] = replace(w, proposed_to=holder, proposed_at=now)
                out.append(c.AssignTask(w.task_id, f"assign:{w.task_id}:{holder}:{now}", now, holder))
                continue
            agent_id = choose(w, self.agents, free)
            if agent_id is None:
                continue
            free[agent_id] -= 1
            self.waiting[w.task_id] = replace(w, proposed_to=agent_id, proposed_at=now)
            out.append(c.ReserveSlot(agent_id, f"reserve:{w.task_id}:{agent_id}:{now}", now, w.task_id))
        return out

    def _pending(self, agent_id: str) -> int:
        holding = self.agents[agent_id].holding
        return sum(1 for w in self.waiting.values() if w.proposed_to == agent_id and w.task_id not in holding)

    def queued(self) -> list[Waiting]:
        return sorted(self.waiting.values(), key=lambda w: (-w.priority, w.order))


def choose(w: Waiting, agents: dict[str, agent_agg.AgentState], free: dict[str, int]) -> str | None:
    """Least loaded eligible agent; ties broken by agent id. Agents that refused come last."""
    best = None
    for agent_id, slots in free.items():
        a = agents[agent_id]
        if slots <= 0 or not Offer(a.capabilities).satisfies(w.requires):
            continue
        key = (agent_id in w.refused_by, len(a.holding) / max(a.slots, 1), agent_id)
        if best is None or key < best[0]:
            best = (key, agent_id)
    return best[1] if best else None
