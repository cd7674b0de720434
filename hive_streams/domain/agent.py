"""The agent aggregate: an executor's offer, liveness and the slots it has promised."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import singledispatch

from . import commands as c
from . import events as e
from .evolving import Handlers, copy_with, quick_init
from .model import Capability, Hardware
from .task import NO_KEY


@quick_init
@dataclass(frozen=True)
class AgentState:
    agent_id: str
    seq: int = 0
    status: str = "unknown"
    name: str = ""
    capabilities: tuple[Capability, ...] = ()
    slots: int = 0
    endpoint: str = ""
    model: str = ""
    hardware: Hardware = field(default_factory=Hardware)
    price: float = 0.0
    targets: dict[str, float] = field(default_factory=dict)
    public_key: str = ""
    holding: frozenset[str] = frozenset()
    last_seen: int = 0
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    gpu_percent: float | None = None  # null where the host has no GPU or no NVML: never a made-up 0
    gpu_memory_percent: float | None = None
    gpu_temperature_c: float | None = None
    tokens_per_second: float | None = None
    response_seconds: float | None = None  # mean run time of the executor's recent tasks

    def live(self, now: int, timeout_ms: int) -> bool:
        return self.status == "online" and now - self.last_seen <= timeout_ms

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - len(self.holding))


def decide(command: c.AgentCommand, state: AgentState, now: int, timeout_ms: int) -> list[e.AgentEvent]:
    drafts = _decide(command, state, now, timeout_ms)
    return [replace(ev, seq=state.seq + i + 1) for i, ev in enumerate(drafts)]


def _base(state: AgentState, now: int) -> dict:
    return {"agent_id": state.agent_id, "seq": 0, "at": now}


@singledispatch
def _decide(command, state: AgentState, now: int, timeout_ms: int) -> list[e.AgentEvent]:
    raise TypeError(f"unknown agent command {type(command).__name__}")


def _online_if_needed(state: AgentState, now: int) -> list[e.AgentEvent]:
    if state.status == "online":
        return []
    return [e.AgentStatusChanged(**_base(state, now), status="online", reason="heard from")]


def _offline(state: AgentState, now: int, reason: str) -> e.AgentStatusChanged:
    return e.AgentStatusChanged(**_base(state, now), status="offline", reason=reason,
                                lost_tasks=tuple(sorted(state.holding)), holds_kept=True)


MAX_SLOTS = 10_000
MAX_PRICE = 1e9  # per task; its cents must fit an Avro long with room to add
MAX_AMOUNT = 1e6  # GB of memory, cores: more than any machine has
MAX_CAPABILITIES = 1_000


def _finite_in(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high  # NaN fails


def offer_problem(cmd: c.RegisterAgent | e.AgentRegistered) -> str:
    """Why an offer (a registration, or one recorded before offers were checked) cannot be taken: a value no
    matching or payment can work with; or ""."""
    if not isinstance(cmd.slots, int) or not 1 <= cmd.slots <= MAX_SLOTS:
        return f"slots must be from 1 to {MAX_SLOTS}, not {cmd.slots!r}"
    if not _finite_in(cmd.price, 0, MAX_PRICE):
        return f"price must be a number from 0 to {MAX_PRICE:g}, not {cmd.price!r}"
    if len(cmd.capabilities) > MAX_CAPABILITIES:
        return f"at most {MAX_CAPABILITIES} capabilities"
    for cap in cmd.capabilities:
        if not cap.name or not _finite_in(cap.proficiency, 0, 1):
            return f"capability {cap.name!r}: a name and a proficiency from 0 to 1 (not {cap.proficiency!r})"
    hw = cmd.hardware
    for name in ("vram_gb", "cpu_cores", "ram_gb"):
        if not _finite_in(getattr(hw, name), 0, MAX_AMOUNT):
            return f"hardware.{name} must be from 0 to {MAX_AMOUNT:g}, not {getattr(hw, name)!r}"
    for name, value in cmd.targets.items():
        if not _finite_in(value, -MAX_PRICE, MAX_PRICE):
            return f"targets.{name} must be a finite number, not {value!r}"
    return ""


SILENT = "no heartbeat"  # how an expiry's reason begins: the agent fell silent (alerts tell it from a clean stop)
LOAD_FIELDS = ("cpu_percent", "memory_percent", "gpu_percent", "gpu_memory_percent", "gpu_temperature_c",
               "tokens_per_second", "response_seconds")  # what a heartbeat reports, kept by the state
OFFER_FIELDS = ("name", "capabilities", "slots", "endpoint", "model", "hardware", "price", "targets", "public_key")


@_decide.register
def _(cmd: c.RegisterAgent, state: AgentState, now: int, timeout_ms: int):
    if cmd.slots < 1:
        return []
    offer = {name: getattr(cmd, name) for name in OFFER_FIELDS} | {"price": cmd.price + 0.0}  # -0.0 is 0.0
    if state.status == "online" and all(getattr(state, k) == v for k, v in offer.items()):
        return []  # the same offer again
    return [e.AgentRegistered(**_base(state, now), **offer)] + _online_if_needed(state, now)


@_decide.register
def _(cmd: c.Heartbeat, state: AgentState, now: int, timeout_ms: int):
    if state.status == "unknown":
        return []
    beat = e.AgentHeartbeat(**_base(state, now), running=cmd.running,
                            **{name: getattr(cmd, name) for name in LOAD_FIELDS})
    return _online_if_needed(state, now) + [beat]


@_decide.register
def _(cmd: c.DeregisterAgent, state: AgentState, now: int, timeout_ms: int):
    if state.status != "online":
        return []
    return [_offline(state, now, cmd.reason or "deregistered")]


@_decide.register
def _(cmd: c.ExpireAgent, state: AgentState, now: int, timeout_ms: int):
    if state.status != "online" or now - state.last_seen <= timeout_ms:
        return []
    return [_offline(state, now, f"{SILENT} for {(now - state.last_seen) / 1000:.1f}s")]


@_decide.register
def _(cmd: c.ReserveSlot, state: AgentState, now: int, timeout_ms: int):
    if cmd.task_id in state.holding:  # a second offer for a task it holds: refuse it, so its escrow goes back
        return [e.SlotRefused(**_base(state, now), task_id=cmd.task_id, reason="already held", escrow_id=cmd.escrow_id,
                             round_id=cmd.round_id)]
    reason = ("not online" if not state.live(now, timeout_ms)
              else "no free slot" if state.free_slots == 0
              else NO_KEY if cmd.escrow_id and not state.public_key else "")
    if reason:
        return [e.SlotRefused(**_base(state, now), task_id=cmd.task_id, reason=reason, escrow_id=cmd.escrow_id,
                              round_id=cmd.round_id)]
    return [e.SlotReserved(**_base(state, now), task_id=cmd.task_id, escrow_id=cmd.escrow_id,
                           public_key=state.public_key, round_id=cmd.round_id)]


@_decide.register
def _(cmd: c.ReleaseSlot, state: AgentState, now: int, timeout_ms: int):
    if cmd.task_id not in state.holding:
        return []
    return [e.SlotReleased(**_base(state, now), task_id=cmd.task_id)]


def signing_key(cmd: c.AgentCommand, state: AgentState) -> tuple[str, str]:
    """The public key the agent's command must be signed with, or why there is none.

    An agent id belongs to the key it was first registered with (trust on first use): a first
    registration is signed by the key it brings; every later command, a re-registration that brings
    a new key included, by the key registered now."""
    if state.public_key:
        return state.public_key, ""
    if isinstance(cmd, c.RegisterAgent):
        return (cmd.public_key, "") if cmd.public_key else ("", "a registration must carry a public key")
    return "", f"agent {state.agent_id} has no registered key"


def evolve(state: AgentState, event: e.AgentEvent) -> AgentState:
    if event.seq <= state.seq:
        return state
    changes = _on(event, state)
    return copy_with(state, changes, seq=event.seq)


_on = Handlers("agent")


@_on.on(e.AgentRegistered)
def _(ev: e.AgentRegistered, state: AgentState):
    return {**{name: getattr(ev, name) for name in OFFER_FIELDS}, "last_seen": ev.at}


@_on.on(e.AgentHeartbeat)
def _(ev: e.AgentHeartbeat, state: AgentState):
    return {"last_seen": ev.at, **{name: getattr(ev, name) for name in LOAD_FIELDS}}


@_on.on(e.AgentStatusChanged)
def _(ev: e.AgentStatusChanged, state: AgentState):
    if ev.status == "online":
        return {"status": "online", "last_seen": ev.at}
    if ev.holds_kept:  # lost tasks go back to the market; each slot is freed by its own task's release
        return {"status": ev.status}
    return {"status": ev.status, "holding": frozenset()}


@_on.on(e.SlotReserved)
def _(ev: e.SlotReserved, state: AgentState):
    return {"holding": state.holding | {ev.task_id}}


@_on.on(e.SlotRefused)
def _(ev: e.SlotRefused, state: AgentState):
    return None


@_on.on(e.SlotReleased)
def _(ev: e.SlotReleased, state: AgentState):
    return {"holding": state.holding - {ev.task_id}}
