"""The alert rules' shell, run by the matcher's leader over the events the matcher folds.

At start it folds the alerts already in `<prefix>.alerts`, so the open alerts and the cooldowns
survive a restart or a new leader; what the rules propose while the matcher replays the log is
dropped (it is history), and the first live heartbeat or clock tick proposes again what still holds.
Its writer is an idempotent producer, like the matcher's: a deposed leader can repeat an alert,
which readers fold away by (alert id, seq).
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import TopicPartition

from ..codec import Codec
from ..domain.alerts import Alerting, RuleError, parse_rules
from ..domain.events import AlertEvent
from ..exceptions import CodecError, ConfigError
from ..kafka import access_for, producer, read_to_end, stop_quietly
from ..topics import Topics

log = logging.getLogger(__name__)
SOURCE = "/hive-streams/alerts"
RETRY_SECONDS = 10.0  # a failed start or write is retried (from the log) this long after; matching goes on


def rules_from(settings):
    try:
        return parse_rules(settings.alert_rules)
    except RuleError as exc:
        raise ConfigError(f"HIVE_ALERT_RULES: {exc}") from None


class Alerter:
    def __init__(self, codec: Codec, topics: Topics, settings):
        self.codec = codec
        self.topics = topics
        self.kafka = access_for(settings, "worker")
        self.rules = rules_from(settings)
        self.alerting = Alerting(self.rules)
        self.live = False
        self.pending: list[AlertEvent] = []
        self.writer = None
        self.ready = False
        self.tried = 0.0

    async def start(self) -> None:
        """Restores from the alerts log; a failure leaves the rules off until a retry, never stops the matcher."""
        self.tried = time.monotonic()
        try:
            await self._start()
            self.ready = True
        except Exception:
            log.exception("alert rules off: could not restore them from %s; retrying", self.topics.alerts)
            await self.stop()

    async def _start(self) -> None:
        self.alerting, self.live, self.pending = Alerting(self.rules), False, []
        count = 0
        async for records in read_to_end(self.kafka, {TopicPartition(self.topics.alerts, 0): None}):
            for record in records:
                try:
                    event = self.codec.decode(record.value)
                except CodecError:
                    continue
                if isinstance(event, AlertEvent):
                    self.alerting.record(event)
                    count += 1
        self.writer = producer(self.kafka, client_id="hive-streams-alerts")
        await self.writer.start()
        log.info("alerts restored: %d events, %d open", count, len(self.alerting.open))

    async def stop(self) -> None:
        self.ready = False
        if self.writer is not None:
            await stop_quietly(self.writer, "the alert writer")
            self.writer = None

    def observe(self, event) -> None:
        if not self.ready:
            return
        proposed = self.alerting.observe(event)
        if self.live:
            self._take(proposed)

    def _take(self, events: list[AlertEvent]) -> None:
        for event in events:
            self.alerting.record(event)  # applied now: the next input sees it open (or resolved)
            self.pending.append(event)

    async def flush(self, now: int) -> None:
        """Goes live (once the matcher has caught up), adds what the clock calls for, and writes what is pending."""
        if not self.ready:
            if time.monotonic() - self.tried >= RETRY_SECONDS:
                await self.start()  # the inputs seen while it was off are lost to it: beats and ticks come again
            return
        try:
            await self._flush(now)
        except Exception:
            log.exception("writing alerts failed; the rules restart from the log")
            await self.stop()

    async def _flush(self, now: int) -> None:
        self.live = True
        self._take(self.alerting.tick(now))
        pending, self.pending = self.pending, []
        acks = []
        for event in pending:
            key, value, headers = self.codec.message(event, SOURCE)
            acks.append(await self.writer.send(self.topics.alerts, value, key=key, headers=headers))
            log.warning("%s %s: %s", type(event).__name__, event.alert_id, getattr(event, "message", ""))
        if acks:
            await asyncio.gather(*acks)
