"""The producer client's commands, before any IO: the API's parser, ids, the principal."""
from __future__ import annotations

import pytest

from hive_streams.domain.definition import parse_task
from hive_streams.exceptions import HiveError, InfraError
from hive_streams.kafka.access import KafkaAccess
from hive_streams.producer import InvalidDefinition, TaskProducer
from hive_streams.topics import Topics

ECHO = {"name": "echo", "nodes": [{"id": "a", "kind": "echo"}], "deadline_seconds": 5}


@pytest.fixture
def producer():
    return TaskProducer(KafkaAccess("127.0.0.1:1", "producer", "unused"), Topics("t"), principal="etl", key=b"k" * 32)


def test_a_definition_is_read_by_the_apis_parser(producer):
    command = producer._command(0, ECHO, None, 1_000)
    spec = parse_task(ECHO, 1_000)
    assert (command.name, command.nodes, command.deadline_at) == (spec.name, spec.nodes, spec.deadline_at)
    assert command.requester == "etl" and command.at == 1_000 and len(command.task_id) == 32


def test_a_task_spec_is_sent_as_it_is_and_ids_can_be_chosen(producer):
    spec = parse_task(ECHO, 0)
    assert producer._command(0, spec, "mine", 0).task_id == "mine"
    assert producer._command(0, {**ECHO, "id": "in-def"}, None, 0).task_id == "in-def"
    assert producer._command(0, {**ECHO, "id": "in-def"}, "given", 0).task_id == "given"


def test_a_wrong_definition_names_its_index_and_field(producer):
    with pytest.raises(InvalidDefinition) as wrong:
        producer._command(7, {"name": "x", "nodes": [{"id": "a", "kind": "nope"}]}, None, 0)
    assert (wrong.value.index, wrong.value.path) == (7, "nodes[0].kind")
    assert isinstance(wrong.value, HiveError)
    with pytest.raises(InvalidDefinition) as bad_id:
        producer._command(0, ECHO, "no spaces", 0)
    assert bad_id.value.path == "id"


def test_the_principal_is_the_source(producer):
    assert producer.source == "/hive-streams/producer/etl"
    assert producer.topics.task_commands == "t.task.commands"


async def test_sending_before_start_is_refused(producer):
    with pytest.raises(InfraError):
        await producer.submit(ECHO)


def test_a_tenants_principal_submits_its_tenants_tasks():
    producer = TaskProducer(KafkaAccess("127.0.0.1:1", "producer", "unused"), Topics("t"), principal="acme/etl", key=b"k" * 32)
    command = producer._command(0, {**ECHO, "id": "nightly", "after": ["extract"]}, None, 0)
    assert (command.task_id, command.after, command.requester) == ("acme:nightly", ("acme:extract",), "acme/etl")
    with pytest.raises(InvalidDefinition) as refused:
        producer._command(0, {**ECHO, "after": ["globex:extract"]}, None, 0)
    assert refused.value.path == "after[0]"
