"""Dead letters you can act on: list and show them, and re-drive a command to its command topic.

A re-driven command goes back to the topic it was dead-lettered from (`dlq_topic`), with its key and
value unchanged, so the default partitioner puts it on its aggregate's partition and its decider
takes it like any other command (and skips it if its id was applied already: it takes effect once).
Its headers are the original ones plus `dlq_redriven_from` (`<dead-letter topic>@<offset>`). The
re-drive is then recorded on the dead-letter topic itself: an empty record with `dlq_redriven_from`
(the letter's offset) and `dlq_redriven_to` (`topic[partition]@offset`). Events are never re-driven.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import TopicPartition

from ..codec import header
from ..domain.commands import AgentCommand, LedgerCommand, TaskCommand
from ..exceptions import CodecError, HiveError
from ..kafka.access import KafkaAccess
from ..kafka.clients import producer
from ..kafka.reader import read_to_end
from ..kafka.routing import command_topic
from ..topics import Topics

REDRIVEN_FROM, REDRIVEN_TO = "dlq_redriven_from", "dlq_redriven_to"
DLQ_HEADERS = ("dlq_reason", "dlq_topic", "dlq_partition", "dlq_offset", REDRIVEN_FROM, REDRIVEN_TO)
COMMANDS = (TaskCommand, AgentCommand, LedgerCommand)


class NotRedrivable(HiveError):
    pass


@dataclass
class Letter:
    offset: int
    timestamp: int  # ms, when it was dead-lettered
    key: bytes | None
    value: bytes | None
    headers: tuple
    type: str  # the decoded record's type, or why it does not decode
    command: object | None
    redrives: list[str] = field(default_factory=list)  # where each re-drive went

    @property
    def reason(self) -> str:
        return header(self.headers, "dlq_reason") or ""

    @property
    def source(self) -> str:
        return header(self.headers, "dlq_topic") or ""

    @property
    def origin(self) -> str:
        return f"{self.source}[{header(self.headers, 'dlq_partition')}]@{header(self.headers, 'dlq_offset')}"

    def summary(self) -> dict:
        return {"offset": self.offset, "timestamp": self.timestamp, "key": (self.key or b"").decode(errors="replace"),
                "type": self.type, "id": header(self.headers, "ce_id"), "from": self.origin, "reason": self.reason,
                "redriven_to": list(self.redrives)}


@dataclass(frozen=True)
class LetterFilter:
    topic: str = ""  # a source topic's full name or family (`task`, `ledger`)
    reason: str = ""  # substring, case-insensitive
    since: int | None = None
    until: int | None = None
    redriven: bool | None = None

    def matches(self, letter: Letter) -> bool:
        family = letter.source.split(".")[-2:-1]
        return ((not self.topic or letter.source == self.topic or family == [self.topic])
                and self.reason.lower() in letter.reason.lower()
                and (self.since is None or letter.timestamp >= self.since)
                and (self.until is None or letter.timestamp < self.until)
                and (self.redriven is None or bool(letter.redrives) == self.redriven))


async def letters(kafka: KafkaAccess, topics: Topics, codec) -> list[Letter]:
    """Every dead letter, in order, with the re-drives recorded after it."""
    found: dict[int, Letter] = {}
    async for batch in read_to_end(kafka, {TopicPartition(topics.deadletter, 0): None}):
        for r in batch:
            headers = tuple(r.headers)
            source = header(headers, REDRIVEN_FROM)
            if source is not None:
                if int(source) in found:
                    found[int(source)].redrives.append(header(headers, REDRIVEN_TO) or "?")
                continue
            try:
                command = codec.decode(r.value)
                kind = type(command).__name__
            except CodecError as exc:
                command, kind = None, f"undecodable: {exc}"
            found[r.offset] = Letter(r.offset, r.timestamp, r.key, r.value, headers, kind, command)
    return list(found.values())


def check_redrivable(letter: Letter, topics: Topics) -> str:
    """The command topic the letter goes back to, or why it cannot."""
    wanted = {topics.task_commands, topics.agent_commands, topics.ledger_commands}
    if letter.source not in wanted:
        raise NotRedrivable(f"dead letter {letter.offset} came from {letter.source or 'no topic'}: only commands are re-driven")
    if not isinstance(letter.command, COMMANDS):
        raise NotRedrivable(f"dead letter {letter.offset} is not a command ({letter.type})")
    if command_topic(topics, letter.command) != letter.source:
        raise NotRedrivable(f"dead letter {letter.offset} is a {letter.type}, which does not belong on {letter.source}")
    return letter.source


async def redrive(kafka: KafkaAccess, topics: Topics, letter: Letter, again: bool = False) -> str:
    """Sends the command back to its topic, records the re-drive, and returns where the command went."""
    target = check_redrivable(letter, topics)
    if letter.redrives and not again:
        raise NotRedrivable(f"dead letter {letter.offset} was re-driven already (to {', '.join(letter.redrives)}); "
                            "--again sends it once more (its decider skips a command it applied)")
    headers = [(k, v) for k, v in letter.headers if k not in DLQ_HEADERS]
    headers.append((REDRIVEN_FROM, f"{topics.deadletter}@{letter.offset}".encode()))
    writer = producer(kafka, client_id="hive-dlq")
    await writer.start()
    try:
        sent = await writer.send_and_wait(target, letter.value, key=letter.key, headers=headers)
        where = f"{sent.topic}[{sent.partition}]@{sent.offset}"
        await writer.send_and_wait(topics.deadletter, b"", key=letter.key, headers=[
            (REDRIVEN_FROM, str(letter.offset).encode()), (REDRIVEN_TO, where.encode())])
    finally:
        await writer.stop()
    letter.redrives.append(where)
    return where
