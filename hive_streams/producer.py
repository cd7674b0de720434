"""Submitting tasks straight to Kafka: SubmitTask commands with the API's encoding and headers.

    key = HiveClient(url, token=token).producer_key()  # or `hive-streams producer-key acme/etl-nightly`
    async with TaskProducer(access_for(settings, "producer"), Topics(), principal="acme/etl-nightly", key=key) as producer:
        task_id = await producer.submit({"name": "hello", "nodes": [{"id": "a", "kind": "echo"}]})
        task_ids = await producer.submit_many(definitions)

Definitions are read by the API's parser (`domain.definition`); a wrong one raises
`InvalidDefinition` before anything is sent. The task decider checks each task as it does one
sent over HTTP. The producer's principal travels in the `ce_source` and `hive_principal` headers, and
its key (derived for that principal from the fabric's service secret) seals each command, so the
deciders know the principal is who it says and refuse anything else a producer sends;
a principal `<tenant>/<sub>` submits its tenant's tasks (`<tenant>:<id>`, dependencies within it).
It connects to Kafka with the `producer` role, which may write task commands and nothing else.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence

from aiokafka.errors import KafkaError

from .codec import Codec, default_codec
from .domain.commands import SubmitTask
from .domain.definition import DefinitionError, definition_digest, in_tenant, parse_task, requested_id
from .domain.model import TaskSpec
from .domain.tenancy import account_tenant, qualified
from .exceptions import HiveError, InfraError
from .kafka.access import KafkaAccess
from .kafka.clock import now_ms
from .kafka.principal import principal_header
from .kafka.routing import CommandSender
from .kafka.seal import Sealer
from .topics import Topics

SOURCE_PREFIX = "/hive-streams/producer"
LINGER_MS = 5


class InvalidDefinition(HiveError, ValueError):
    def __init__(self, index: int, path: str, message: str):
        super().__init__(f"definition {index}: {path}: {message}")
        self.index, self.path, self.message = index, path, message


Definition = Mapping | TaskSpec


class TaskProducer:
    def __init__(self, kafka: KafkaAccess, topics: Topics | str, *, principal: str, key: bytes | str,
                 codec: Codec | None = None, linger_ms: int = LINGER_MS):
        self.kafka = kafka
        self.sealer = Sealer.producer(bytes.fromhex(key) if isinstance(key, str) else key)
        self.topics = topics if isinstance(topics, Topics) else Topics(topics)
        self.principal = principal
        self.source = f"{SOURCE_PREFIX}/{principal}"
        self.codec = codec or default_codec()
        self.linger_ms = linger_ms
        self.sender: CommandSender | None = None

    async def start(self) -> None:
        self.sender = CommandSender(self.kafka, self.topics, self.codec, self.source, linger_ms=self.linger_ms,
                                    sealer=self.sealer)
        try:
            await self.sender.start()
        except KafkaError as exc:
            raise InfraError(f"cannot reach Kafka at {self.kafka.bootstrap} as {self.kafka.username}: {exc}") from exc

    async def stop(self) -> None:
        if self.sender is not None:
            await self.sender.stop()

    async def __aenter__(self) -> "TaskProducer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def submit(self, definition: Definition, task_id: str | None = None) -> str:
        return (await self.submit_many([definition], [task_id]))[0]

    async def submit_many(self, definitions: Iterable[Definition],
                          task_ids: Sequence[str | None] | None = None) -> list[str]:
        """Sends every task, then waits once for all the acknowledgements; returns their ids in order."""
        if self.sender is None:
            raise InfraError("the producer is not started: use `async with` or await start()")
        now = now_ms()
        definitions = list(definitions)
        ids = list(task_ids) if task_ids is not None else [None] * len(definitions)
        if len(ids) != len(definitions):
            raise ValueError(f"{len(definitions)} definitions but {len(ids)} task ids")
        commands = [self._command(i, d, task_id, now) for i, (d, task_id) in enumerate(zip(definitions, ids))]
        headers = [principal_header(self.principal)]
        try:
            acks = [await self.sender.send(command, extra_headers=headers) for command in commands]
            await asyncio.gather(*acks)
        except KafkaError as exc:
            raise InfraError(f"Kafka did not take the tasks: {exc}") from exc
        return [command.task_id for command in commands]

    def _command(self, index: int, definition: Definition, task_id: str | None, now: int) -> SubmitTask:
        tenant = account_tenant(self.principal)
        try:
            if isinstance(definition, TaskSpec):
                spec, chosen = definition, None
            elif isinstance(definition, Mapping):
                raw = dict(definition)
                spec, chosen = parse_task(raw, now), requested_id(raw)
            else:
                raise DefinitionError("$", "a task definition must be a mapping or a TaskSpec")
            if task_id is not None:
                chosen = requested_id({"id": task_id})
            spec = in_tenant(spec, tenant)
        except DefinitionError as exc:
            raise InvalidDefinition(index, exc.path, exc.message) from None
        return SubmitTask.of(qualified(tenant, chosen or uuid.uuid4().hex), uuid.uuid4().hex, now, self.principal,
                             spec, definition_digest(definition))
