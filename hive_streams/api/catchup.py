"""Reading the log from a client's position when it is older than what the hub holds in memory."""
from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..codec import Codec
from ..kafka.access import KafkaAccess
from ..kafka.clients import consumer
from .records import Item, SeqMemory, decode, lookback_start


class CatchUp:
    """A short-lived consumer (no group) over some partitions, from given offsets.

    It starts up to `lookback` records early on each partition: those only teach it which
    events it has seen, so a duplicate of one of them is still left out.
    """

    def __init__(self, kafka: KafkaAccess, codec: Codec, starts: dict[TopicPartition, int], lookback: int):
        self.kafka, self.codec, self.lookback = kafka, codec, lookback
        self.starts = dict(starts)
        self.pos = dict(starts)  # the next offset this reader will look at, per partition
        self.seqs = SeqMemory()
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> "CatchUp":
        self._consumer = consumer(self.kafka, client_id="hive-feed-catchup")
        await self._consumer.start()
        try:
            tps = list(self.starts)
            self._consumer.assign(tps)
            beginnings = await self._consumer.beginning_offsets(tps)
            for tp in tps:
                first, _ = lookback_start(beginnings[tp], self.starts[tp], self.lookback)
                self._consumer.seek(tp, first)
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._consumer.stop()

    async def read(self, tps: list[TopicPartition]) -> list[Item]:
        """The next batch of fresh items at or after the start positions, in log order per partition."""
        batch = await self._consumer.getmany(*tps, timeout_ms=500, max_records=1000)
        out = []
        for tp, records in batch.items():
            for record in records:
                item = decode(self.codec, record, self.seqs)
                if item is not None and record.offset >= self.starts[tp]:
                    out.append(item)
        for tp in tps:
            self.pos[tp] = max(self.pos[tp], await self._consumer.position(tp))
        return out
