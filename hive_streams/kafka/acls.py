"""What each role may do on the broker, for one deployment's topics (one topic prefix).

The broker denies whatever no ACL allows (`allow.everyone.if.no.acl.found=false`); only the
admin is a super user. What each role is granted is what its process does:

| role | writes | reads | also |
|---|---|---|---|
| worker | events, snapshots (the deciders' and the matcher's), dead letters, alerts, the executors' inbox, every command topic (follow-ups, the matcher, the sweep, schedule slots, trigger matches, callback attempts) | commands, events, snapshots, alerts | creates the topics (and describes the audit checkpoints and blobs it creates); its consumer group; transactional ids `<worker id>.*` |
| api | task, agent, ledger, execution, schedule and trigger commands | task, agent, ledger, execution, schedule, trigger and callback events, alerts (SSE feeds and their catch-up, time travel, execution reads, schedule and trigger listings), blobs | |
| executor | task and agent commands, blobs | the executors' inbox (each agent can open only its own records), blobs (earlier attempts' outputs) | |
| connector | audit checkpoints, dead letters (strays of event topics, records a read model refuses) | every event topic (`Topics.event_topics`: each family's events and the alerts) | |
| producer | task commands | — | |
| analyst | — | every event topic (`Topics.event_topics`), the deciders' and the matcher's snapshots (`replay`), audit checkpoints (`audit verify`), blobs | consumer groups `<prefix>.analyst.*` |

Topics are granted by their exact names (LITERAL), groups and transactional ids by prefix.
Idempotent writers need no cluster permission: since Kafka 3.0 WRITE on a topic covers them.
"""
from __future__ import annotations

from dataclasses import dataclass

import asyncio

from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request

from ..exceptions import InfraError
from ..topics import Topics
from .access import KafkaAccess
from .clients import admin

# Kafka's wire codes (org.apache.kafka.common.resource / acl)
TOPIC, GROUP, TRANSACTIONAL_ID = 2, 3, 5
LITERAL, PREFIXED = 3, 4
READ, WRITE, CREATE, DESCRIBE = 3, 4, 5, 8
ALLOW = 3
ANY, ANY_HOST = 1, "*"
VISIBLE_WITHIN = 30.0  # seconds for the broker to serve ACLs the controller has committed
OPERATIONS = {READ: "READ", WRITE: "WRITE", CREATE: "CREATE", DESCRIBE: "DESCRIBE"}
RESOURCES = {TOPIC: "topic", GROUP: "group", TRANSACTIONAL_ID: "transactional id"}


@dataclass(frozen=True)
class Grant:
    role: str
    operation: int
    resource_type: int
    name: str
    pattern: int = LITERAL

    def __str__(self) -> str:
        wildcard = "*" if self.pattern == PREFIXED else ""
        return f"{self.role}: {OPERATIONS[self.operation]} {RESOURCES[self.resource_type]} {self.name}{wildcard}"


def analyst_group_prefix(topics: Topics) -> str:
    return f"{topics.prefix}.analyst."


def grants(topics: Topics, worker_id: str) -> list[Grant]:
    t = topics
    commands = [name for name in t.layout() if name.endswith(".commands")]
    events = [name for name in t.event_topics if name.endswith(".events")]  # each family's; the alerts apart
    snapshots = [t.snapshots_of(name) for name in events] + [t.matcher_snapshots]  # the deciders' and the matcher's
    out = [Grant("worker", CREATE, TOPIC, name) for name in t.layout()]
    out += [Grant("worker", READ, TOPIC, name) for name in commands + events + snapshots + [t.alerts]]
    out += [Grant("worker", WRITE, TOPIC, name) for name in commands + events + snapshots + [t.deadletter, t.alerts,
                                                                                          t.executor_inbox]]
    out += [Grant("worker", DESCRIBE, TOPIC, name) for name in (t.audit_checkpoints, t.blobs)]  # it creates them
    out += [Grant("worker", READ, GROUP, worker_id),
            Grant("worker", WRITE, TRANSACTIONAL_ID, f"{worker_id}.", PREFIXED)]
    out += [Grant("api", WRITE, TOPIC, name) for name in commands if name != t.callback_commands]  # the worker's
    out += [Grant("api", READ, TOPIC, name) for name in events + [t.alerts]]  # feeds; time travel; listings
    out += [Grant("executor", WRITE, TOPIC, name) for name in (t.task_commands, t.agent_commands)]
    out += [Grant("executor", READ, TOPIC, t.executor_inbox)]  # never the task events: other agents' tasks
    out += [Grant("executor", op, TOPIC, t.blobs) for op in (WRITE, READ)]  # its outputs; earlier attempts' on a retry
    out += [Grant("api", READ, TOPIC, t.blobs)]
    out += [Grant("connector", READ, TOPIC, name) for name in t.event_topics]  # every topic it audits
    out += [Grant("connector", WRITE, TOPIC, name) for name in (t.audit_checkpoints, t.deadletter)]
    out += [Grant("producer", WRITE, TOPIC, t.task_commands)]
    out += [Grant("analyst", READ, TOPIC, name) for name in [*t.event_topics, *snapshots, t.audit_checkpoints, t.blobs]]
    out += [Grant("analyst", READ, GROUP, analyst_group_prefix(t), PREFIXED)]
    return out


# aiokafka's admin client has no ACL calls; its protocol classes send one binding per request, these all at once
class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, creations: list[tuple]):
        self.creations = creations

    def build(self, request_struct_class):
        return request_struct_class(self.creations)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    API_KEY = 31

    def __init__(self, filters: list[tuple]):
        self.filters = filters

    def build(self, request_struct_class):
        return request_struct_class(self.filters)


def _rows(wanted: list[Grant], users: dict[str, str]) -> list[tuple]:
    return [(g.resource_type, g.name, g.pattern, f"User:{users.get(g.role, g.role)}", ANY_HOST, g.operation, ALLOW)
            for g in wanted]


async def apply(kafka: KafkaAccess, wanted: list[Grant], users: dict[str, str] | None = None) -> None:
    """Creates the ACLs (an existing one is left as it is), in one request; needs the admin's credentials.

    `users` maps a role to its user name where they differ."""
    rows = _rows(wanted, users or {})
    client = admin(kafka, request_timeout_ms=15000)
    await client.start()
    try:
        response = await client._send_request(_CreateAcls(rows))
        failed = [(str(g), code, message) for g, (code, message) in zip(wanted, response.creation_responses) if code]
        if failed:
            raise InfraError(f"creating ACLs failed: {failed}")
        await _until_served(client, rows)
    finally:
        await client.close()


async def _until_served(client, rows: list[tuple]) -> None:
    """The controller acknowledges ACLs before the brokers' authorizers have them: wait until every broker does.

    Each broker applies the metadata log on its own, and a write is authorized by its partition's leader. The
    brokers are those the cluster's metadata lists, asked again each round (one may register meanwhile); one that
    does not answer yet stays pending until the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VISIBLE_WITHIN
    served: set[int] = set()
    while True:
        await client._client.force_metadata_update()
        pending = {broker.nodeId for broker in client._client.cluster.brokers()} - served
        for node_id in sorted(pending):
            try:
                response = await client._send_request(DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY),
                                                      node_id)
            except KafkaError:
                continue  # not reachable yet: asked again next round
            held = {(kind, name, pattern, *acl) for kind, name, pattern, acls in response.resources for acl in acls}
            if not set(rows) - held:
                served.add(node_id)
        if not pending - served:
            return
        if loop.time() > deadline:
            raise InfraError(f"ACLs not in effect on brokers {sorted(pending - served)} after {VISIBLE_WITHIN:.0f}s")
        await asyncio.sleep(0.05)


async def revoke(kafka: KafkaAccess, wanted: list[Grant], users: dict[str, str] | None = None) -> int:
    """Deletes exactly these ACLs; returns how many the broker removed."""
    client = admin(kafka, request_timeout_ms=15000)
    await client.start()
    try:
        response = await client._send_request(_DeleteAcls(_rows(wanted, users or {})))
    finally:
        await client.close()
    failed = [(str(g), code, message) for g, (code, message, _) in zip(wanted, response.filter_responses) if code]
    if failed:
        raise InfraError(f"deleting ACLs failed: {failed}")
    return sum(len(matching) for *_, matching in response.filter_responses)
