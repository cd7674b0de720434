from hive_streams.domain import agent
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.model import Capability, Hardware

TIMEOUT = 10_000


def apply(state, cmd, now):
    events = agent.decide(cmd, state, now, TIMEOUT)
    for ev in events:
        state = agent.evolve(state, ev)
    return state, events


def registered(slots=1, caps=("echo",), now=0, **offer):
    cmd = c.RegisterAgent("a1", "r", now, "A", tuple(Capability(x) for x in caps), slots, **offer)
    return apply(agent.AgentState("a1"), cmd, now)[0]


def test_registration_carries_the_whole_offer_and_updates_it():
    state = registered(slots=2, price=0.5, model="llama", hardware=Hardware("a100", 80, 32, 256), targets={"tps": 40.0})
    assert (state.status, state.slots, state.price, state.hardware.vram_gb, state.targets) == ("online", 2, 0.5, 80, {"tps": 40.0})
    same = c.RegisterAgent("a1", "r2", 5, "A", (Capability("echo"),), 2, price=0.5, model="llama",
                           hardware=Hardware("a100", 80, 32, 256), targets={"tps": 40.0})
    assert agent.decide(same, state, 5, TIMEOUT) == []
    updated, events = apply(state, c.RegisterAgent("a1", "r3", 6, "A", (Capability("echo"),), 4, price=0.7), 6)
    assert [type(ev) for ev in events] == [e.AgentRegistered] and (updated.slots, updated.price) == (4, 0.7)


def test_slots_are_never_overbooked():
    state = registered(slots=1)
    state, ev1 = apply(state, c.ReserveSlot("a1", "1", 1, "t1"), 1)
    state, ev2 = apply(state, c.ReserveSlot("a1", "2", 2, "t2"), 2)
    assert type(ev1[0]) is e.SlotReserved
    assert type(ev2[0]) is e.SlotRefused and ev2[0].reason == "no free slot"
    state, _ = apply(state, c.ReleaseSlot("a1", "3", 3, "t1"), 3)
    state, ev4 = apply(state, c.ReserveSlot("a1", "4", 4, "t2"), 4)
    assert type(ev4[0]) is e.SlotReserved and state.holding == {"t2"}


def test_heartbeats_carry_load_and_health():
    state, events = apply(registered(), c.Heartbeat("a1", "h", 5, running=1, cpu_percent=50, memory_percent=20,
                                                    gpu_percent=70, tokens_per_second=31.5), 5)
    assert (state.cpu_percent, state.gpu_percent, state.tokens_per_second, state.last_seen) == (50, 70, 31.5, 5)


def test_silent_agent_goes_offline_by_an_event_and_gives_up_its_tasks():
    state = registered(slots=2)
    state, _ = apply(state, c.ReserveSlot("a1", "1", 1, "t1"), 1)
    assert agent.decide(c.ExpireAgent("a1", "x", TIMEOUT, ), state, TIMEOUT, TIMEOUT) == []  # not silent long enough
    state, events = apply(state, c.ExpireAgent("a1", "y", TIMEOUT + 5), TIMEOUT + 5)
    assert events[0].status == "offline" and events[0].lost_tasks == ("t1",) and events[0].holds_kept
    assert state.holding == frozenset({"t1"})  # until the lost task's own release
    _, refused = apply(state, c.ReserveSlot("a1", "2", TIMEOUT + 6, "t2"), TIMEOUT + 6)
    assert refused[0].reason == "not online"
    back, events = apply(state, c.Heartbeat("a1", "h", TIMEOUT + 7), TIMEOUT + 7)
    assert [type(ev) for ev in events] == [e.AgentStatusChanged, e.AgentHeartbeat] and back.status == "online"
    _, again = apply(back, c.ReserveSlot("a1", "3", TIMEOUT + 8, "t1"), TIMEOUT + 8)
    assert again[0].reason == "already held"  # an offer made before the loss was read waits for the release
    freed, events = apply(back, c.ReleaseSlot("a1", "4", TIMEOUT + 9, "t1"), TIMEOUT + 9)
    assert [type(ev) for ev in events] == [e.SlotReleased] and freed.holding == frozenset()
    _, reserved = apply(freed, c.ReserveSlot("a1", "5", TIMEOUT + 10, "t1"), TIMEOUT + 10)
    assert type(reserved[0]) is e.SlotReserved


def test_an_offline_written_before_holds_were_kept_still_frees_them():
    state, _ = apply(registered(slots=2), c.ReserveSlot("a1", "1", 1, "t1"), 1)
    legacy = e.AgentStatusChanged("a1", state.seq + 1, 50, "offline", "no heartbeat", ("t1",))
    assert agent.evolve(state, legacy).holding == frozenset()


def test_a_keyless_agent_refuses_a_paid_slot():
    state, events = apply(registered(price=1.0), c.ReserveSlot("a1", "1", 1, "t1", escrow_id="esc"), 1)
    assert type(events[0]) is e.SlotRefused and events[0].escrow_id == "esc" and "key" in events[0].reason
    keyed, events = apply(registered(price=1.0, public_key="k"), c.ReserveSlot("a1", "1", 1, "t1", escrow_id="esc"), 1)
    assert type(events[0]) is e.SlotReserved and events[0].public_key == "k"


def test_a_price_of_minus_zero_is_registered_as_zero():
    state = registered(price=-0.0)
    assert repr(state.price) == "0.0"
