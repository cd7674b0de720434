"""Feed positions, duplicate memory and the hub's fan-out, without servers."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiokafka import TopicPartition

from hive_streams.api.feeds import FeedSpec, batches
from hive_streams.api.hub import Hub
from hive_streams.kafka.access import KafkaAccess
from hive_streams.api.positions import PositionError, TaskPosition, VectorCodec, VectorIds
from hive_streams.api.records import Item, SeqMemory, lookback_start
from hive_streams.codec import default_codec
from hive_streams.codec.avro import to_record
from hive_streams.domain.events import NodeProgress
from hive_streams.topics import Topics

TOPICS = Topics("unit", 3)
TP = TopicPartition(TOPICS.task_events, 1)


def test_task_position_round_trips_and_rejects_garbage():
    assert str(TaskPosition.parse("2:40:7")) == "2:40:7"
    for bad in ("", "1:2", "a:b:c", "1:-2:3", "1:2:3:4"):
        with pytest.raises(PositionError):
            TaskPosition.parse(bad)


def test_vector_positions_round_trip_and_new_partitions_start_at_zero():
    codec = VectorCodec(TOPICS, {TOPICS.task_events: 3, TOPICS.agent_events: 2})
    offsets = {TopicPartition(TOPICS.task_events, 0): 5, TopicPartition(TOPICS.agent_events, 1): 9}
    text = codec.encode(offsets)
    assert text == "t=5,0,0;a=0,9"
    assert {tp: o for tp, o in codec.decode(text).items() if o} == offsets
    assert codec.decode("t=5;a=1")[TopicPartition(TOPICS.task_events, 2)] == 0
    ids = VectorIds(codec, offsets)
    assert ids.after(TopicPartition(TOPICS.agent_events, 0), 3) == "t=5,0,0;a=4,9"
    assert ids.after(TopicPartition(TOPICS.task_events, 2), 0) == codec.encode({**offsets, **{
        TopicPartition(TOPICS.agent_events, 0): 4, TopicPartition(TOPICS.task_events, 2): 1}})
    for bad in ("t=1,2", "x=1;a=2", "t=1;a=-1", "t=a;a=1"):
        with pytest.raises(PositionError):
            codec.decode(bad)


def test_seq_memory_skips_what_it_has_seen_and_forgets_the_oldest():
    memory = SeqMemory(size=2)
    assert memory.fresh("t", "a", 1) and memory.fresh("t", "a", 2)
    assert not memory.fresh("t", "a", 2) and not memory.fresh("t", "a", 1)
    assert memory.fresh("other-topic", "a", 1)  # task and agent ids live apart
    memory.fresh("t", "b", 1)
    assert memory.fresh("t", "a", 1)  # forgotten: only the last two aggregates are kept


def test_lookback_never_starts_before_the_log():
    assert lookback_start(0, 50, 1000) == (0, True)
    assert lookback_start(10, 5000, 1000) == (4000, False)


def progress(offset: int, task_id: str = "t1") -> Item:
    event = NodeProgress(task_id, offset + 1, 0, "n", 0.5)
    return Item(TP, offset, event, "NodeProgress", "{}")


def fed_hub(memory: int = 100, queue_size: int = 100) -> Hub:
    hub = Hub(KafkaAccess("unused:9092", "api", "unused"), default_codec(), TOPICS, memory=memory, queue_size=queue_size)
    hub.held_from[TP] = hub.next[TP] = 0
    return hub


def publish(hub: Hub, item: Item) -> None:
    hub.next[item.tp] = item.offset + 1
    hub._hold(item)
    hub._publish(item)


async def test_slow_client_is_dropped_without_holding_up_the_others(caplog):
    hub = fed_hub(queue_size=3)
    slow = hub.subscribe("slow", lambda item: True)
    fast = hub.subscribe("fast", lambda item: True)
    with caplog.at_level(logging.WARNING):
        for offset in range(5):
            publish(hub, progress(offset))
            if not fast.dropped:
                assert (await fast.queue.get()).offset == offset
    assert slow.dropped and slow not in hub.subscribers and hub.dropped == 1
    assert not fast.dropped and fast in hub.subscribers
    assert "disconnecting slow client slow" in caplog.text


async def test_feed_takes_held_items_then_live_ones_once_each():
    hub = fed_hub(memory=4)
    for offset in range(6):
        publish(hub, progress(offset))
    assert hub.held_from[TP] == 2  # the first two were forgotten
    positions = {TP: 3}
    feed = batches(hub, FeedSpec("test", lambda item: True), positions)
    got = [item.offset for item in await feed.__anext__()]
    publish(hub, progress(6))
    publish(hub, progress(7))
    got += [item.offset for item in await feed.__anext__()]
    assert got == [3, 4, 5, 6, 7] and positions == {TP: 8}
    await feed.aclose()
    assert not hub.subscribers


async def test_feed_of_a_client_ahead_of_the_hub_skips_what_it_has():
    hub = fed_hub()
    feed = batches(hub, FeedSpec("test", lambda item: True), {TP: 2})
    waiting = asyncio.ensure_future(feed.__anext__())
    await asyncio.sleep(0)
    for offset in range(4):
        publish(hub, progress(offset))
    assert [item.offset for item in await waiting] == [2, 3]
    await feed.aclose()


def test_items_know_their_tenant_and_what_one_tenant_may_read():
    from hive_streams.api.records import item_of
    from hive_streams.domain.events import AgentHeartbeat, AgentStatusChanged, SlotReserved
    agent_tp = TopicPartition(TOPICS.agent_events, 0)
    assert item_of(TP, 0, NodeProgress("acme:t", 1, 0, "n", 0.5)).tenant == "acme"
    slot = item_of(agent_tp, 0, SlotReserved("ag", 1, 0, "globex:t"))
    assert slot.tenant == "globex" and slot.public == slot.data
    assert item_of(agent_tp, 1, AgentHeartbeat("ag", 2, 0)).tenant is None
    lost = item_of(agent_tp, 2, AgentStatusChanged("ag", 3, 0, "offline", "silent", ("acme:t", "globex:t")))
    assert lost.tenant is None and "globex:t" in lost.data and "globex:t" not in lost.public
    assert FeedSpec("f", lambda item: True, tenant="acme").data(lost) == lost.public
    assert FeedSpec("f", lambda item: True).data(lost) == lost.data  # a feed of every tenant
    again = item_of(agent_tp, 2, AgentStatusChanged("ag", 3, 0, "offline", "silent", ("acme:t", "globex:t")))
    assert again.public == lost.public and again.data == lost.data  # rendered on first use, whichever comes first
    assert json.loads(slot.data) == {"type": "SlotReserved", **to_record(SlotReserved("ag", 1, 0, "globex:t"))}


async def test_the_hub_offers_an_item_only_to_its_tenants_feeds_and_those_of_every_tenant():
    from hive_streams.api.records import item_of
    hub = fed_hub()
    asked = []

    def match(name):
        return lambda item: asked.append(name) or True
    acme, globex, everyone = (hub.subscribe(n, match(n), t) for n, t in (("acme", "acme"), ("globex", "globex"),
                                                                          ("all", None)))
    publish(hub, item_of(TP, 0, NodeProgress("acme:t", 1, 0, "n", 0.5)))
    assert sorted(asked) == ["acme", "all"]  # the other tenant's feed is never even asked
    assert acme.queue.qsize() == everyone.queue.qsize() == 1 and globex.queue.empty()
    assert [i.offset for i in hub.since({TP: 0}, lambda item: True, "globex")] == []
    assert [i.offset for i in hub.since({TP: 0}, lambda item: True, "acme")] == [0]
    hub.unsubscribe(globex)
    assert "globex" not in hub.by_tenant
    assert hub.submitted == {}


def test_positions_carry_the_alerts_when_the_feeds_do_and_older_ones_start_them_at_zero():
    topics = Topics("p", 2)
    codec = VectorCodec(topics, {topics.task_events: 2, topics.agent_events: 2, topics.alerts: 1})
    assert codec.encode({TopicPartition(topics.alerts, 0): 7}) == "t=0,0;a=0,0;x=7"
    assert codec.decode("t=1,2;a=3,4")[TopicPartition(topics.alerts, 0)] == 0  # written before alerts existed
    assert codec.decode("t=1,2;a=3,4;x=5")[TopicPartition(topics.alerts, 0)] == 5
    with pytest.raises(PositionError):
        codec.decode("t=1,2;x=5")


async def test_a_feed_of_one_task_is_offered_only_that_tasks_items_held_or_live():
    from hive_streams.api.records import item_of
    hub = fed_hub(memory=50)
    asked = []
    for offset in range(40):
        publish(hub, item_of(TP, offset, NodeProgress(f"acme:t{offset % 20}", offset // 20 + 1, 0, "n", 0.5)))
    feed = batches(hub, FeedSpec("t3", lambda item: asked.append(item.offset) or True, task_id="acme:t3"), {TP: 0})
    assert [item.offset for item in await feed.__anext__()] == [3, 23]
    assert asked == [3, 23]  # the other 38 held items were never looked at
    waiting = asyncio.ensure_future(feed.__anext__())
    await asyncio.sleep(0)
    publish(hub, item_of(TP, 40, NodeProgress("acme:t4", 3, 0, "n", 0.5)))
    publish(hub, item_of(TP, 41, NodeProgress("acme:t3", 3, 0, "n", 0.5)))
    assert [item.offset for item in await waiting] == [41] and asked == [3, 23, 41]
    await feed.aclose()
    assert not hub.by_task and not hub.subscribers


def test_the_items_held_by_task_follow_what_the_hub_forgets():
    hub = fed_hub(memory=3)
    for offset in range(5):
        publish(hub, progress(offset, task_id=f"t{offset % 2}"))
    assert [i.offset for i in hub.held_by_task["t0"]] == [2, 4] and [i.offset for i in hub.held_by_task["t1"]] == [3]
    publish(hub, progress(5, task_id="t2"))
    publish(hub, progress(6, task_id="t2"))
    assert set(hub.held_by_task) == {"t0", "t2"}  # t1's last held item was forgotten with it
    assert [i.offset for i in hub.since({TP: 0}, lambda item: True, task_id="t0")] == [4]


def test_the_hub_knows_a_recent_submissions_digest_and_where_its_events_begin():
    from hive_streams.api.records import item_of
    from hive_streams.domain.events import TaskSubmitted
    hub = fed_hub()
    publish(hub, item_of(TP, 7, TaskSubmitted("acme:t", 1, 0, name="n", requester="acme/ann", nodes=(),
                                              definition_digest="d1")))
    publish(hub, item_of(TP, 8, TaskSubmitted("acme:u", 2, 0, name="n", requester="acme/ann", nodes=(),
                                              definition_digest="d2")))
    assert (hub.submitted["acme:t"].digest, hub.submitted["acme:t"].offset) == ("d1", 7)
    assert hub.submitted["acme:u"].offset is None  # not its first event: where its events begin is not known here


async def test_once_the_feeds_start_the_api_looks_recent_submissions_up_in_their_hub(monkeypatch):
    from types import SimpleNamespace
    from hive_streams.api import sse
    from hive_streams.api.app import Api
    from hive_streams.api.records import item_of
    from hive_streams.domain.events import TaskSubmitted
    from hive_streams.settings import Settings

    async def no_broker(self):
        self.partitions = {TOPICS.task_events: 3, TOPICS.agent_events: 3, TOPICS.alerts: 1}
    monkeypatch.setattr(Hub, "start", no_broker)
    monkeypatch.setattr(sse, "access_for", lambda settings, role: KafkaAccess("unused:9092", role, "unused"))
    asked = []
    api = SimpleNamespace(settings=Settings(), codec=default_codec(), topics=TOPICS, hub=None,
                          read=lambda fn, *args: asked.append(fn.__name__))
    feeds = sse.FeedEndpoints(api)
    await feeds.start()
    assert api.hub is feeds.hub
    feeds.hub.held_from[TP] = feeds.hub.next[TP] = 0
    publish(feeds.hub, item_of(TP, 3, TaskSubmitted("acme:t", 1, 0, name="n", requester="acme/ann", nodes=(),
                                                    definition_digest="d1")))
    assert await Api.submitted_digests(api, ["acme:t"]) == {"acme:t": "d1"}
    assert await feeds._first_offset("acme:t", TP) == 3
    assert asked == []  # the store was never asked
