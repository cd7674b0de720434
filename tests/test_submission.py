"""Idempotent requests, batch submission and the Kafka producer client through the real stack."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import create_engine, text

from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.kafka.principal import PRINCIPAL_HEADER
from hive_streams.processes import wait_until
from hive_streams.producer import TaskProducer

from .eventlog import events_of
from .roles import as_role
from .stack import Stack

pytestmark = pytest.mark.stack
ECHO = {"name": "echo", "nodes": [{"id": "say", "kind": "echo", "value": "hi"}]}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, pg_url, tmp_path_factory):
    s = Stack(kafka_bootstrap, pg_url, tmp_path_factory.mktemp("submission"))
    s.start({"echo-a": ("echo", 4), "echo-b": ("echo", 4)})
    s.wait_for_agents(2)
    yield s
    s.stop()


def post(stack: Stack, path: str, body, key: str | None = None, caller: str = "ops"):
    """As the admin named `caller`: idempotency keys belong to the caller."""
    headers = {**stack.auth("admin", caller), **({"Idempotency-Key": key} if key else {})}
    return stack.client.http.post(path, json=body, headers=headers)


def deposits_with(stack: Stack, reference: str) -> list[e.FundsDeposited]:
    return [r.event for r in events_of(stack.bootstrap, stack.topics.ledger_events, 1)
            if isinstance(r.event, e.FundsDeposited) and r.event.reference == reference]


def balance(stack: Stack, account: str) -> float:
    response = stack.client.http.get(f"/api/accounts/{account}")
    return response.json()["available"] if response.status_code == 200 else 0.0


def deposit_marker(stack: Stack, account: str) -> None:
    """A deposit sent after the ones under test: once it is in the ledger, so is everything before it."""
    reference = f"marker-{uuid.uuid4().hex}"
    assert post(stack, f"/api/accounts/{account}/deposits", {"amount": 0.01, "reference": reference}).status_code == 202
    wait_until(lambda: deposits_with(stack, reference), 60, what="the marker deposit")


def completed(stack: Stack, task_ids: list[str], timeout: float = 120) -> None:
    def done():
        tasks = stack.client.tasks(limit=1000, status="completed")
        return set(task_ids) <= {t["task_id"] for t in tasks}
    wait_until(done, timeout, interval=0.5, what=f"{len(task_ids)} tasks to complete")


def test_a_deposit_retried_with_one_key_is_credited_once(stack):
    body = {"amount": 7, "reference": "retried-thrice"}
    answers = [post(stack, "/api/accounts/carol/deposits", body, key="deposit-1") for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert answers[0].content == answers[1].content == answers[2].content
    assert [a.headers.get("idempotent-replayed") for a in answers] == [None, "true", "true"]
    deposit_marker(stack, "carol")
    assert len(deposits_with(stack, "retried-thrice")) == 1
    wait_until(lambda: balance(stack, "carol") == 7.01, 30, what="carol's balance")


def test_a_retry_after_the_first_answer_was_lost_is_deduplicated_by_the_log(stack):
    """The API lost the key's record (as if it had died before keeping it): the retry sends the same command id."""
    body = {"amount": 3, "reference": "answer-lost"}
    assert post(stack, "/api/accounts/dave/deposits", body, key="deposit-2").status_code == 202
    engine = create_engine(stack.database_url)
    with engine.begin() as conn:
        assert conn.execute(text("delete from idempotency_keys where idempotency_key = 'deposit-2'")).rowcount == 1
    engine.dispose()
    retried = post(stack, "/api/accounts/dave/deposits", body, key="deposit-2")
    assert retried.status_code == 202 and "idempotent-replayed" not in retried.headers
    deposit_marker(stack, "dave")
    assert len(deposits_with(stack, "answer-lost")) == 1
    wait_until(lambda: balance(stack, "dave") == 3.01, 30, what="dave's balance")


def test_one_key_with_another_body_is_refused_naming_the_header(stack):
    path = "/api/accounts/erin/deposits"
    assert post(stack, path, {"amount": 1, "reference": "first-body"}, key="deposit-3").status_code == 202
    refused = post(stack, path, {"amount": 2, "reference": "second-body"}, key="deposit-3")
    assert refused.status_code == 422 and refused.json()["field"] == "Idempotency-Key"
    assert "Idempotency-Key" in refused.json()["error"]
    assert post(stack, path, {"amount": 2, "reference": "second-body"}, key="deposit-3", caller="other").status_code == 202
    deposit_marker(stack, "erin")
    assert deposits_with(stack, "second-body")[0].amount == 200 and len(deposits_with(stack, "first-body")) == 1


def test_a_batch_with_one_bad_item_submits_the_others(stack):
    bad = {"name": "bad", "nodes": [{"id": "x", "kind": "teleport"}]}
    response = stack.client.submit_many([ECHO, bad, {**ECHO, "name": "second"}], idempotency_key="batch-1")
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    refused = answer["items"][1]
    assert (refused["status"], refused["code"], refused["field"]) == ("rejected", 422, "nodes[0].kind")
    task_ids = [item["task_id"] for item in answer["items"] if item["status"] == "submitted"]
    completed(stack, task_ids)
    again = stack.client.submit_many([ECHO, bad, {**ECHO, "name": "second"}], idempotency_key="batch-1")
    assert again.json() == answer and again.headers["idempotent-replayed"] == "true"


def test_an_oversized_batch_is_refused_whole(stack):
    response = post(stack, "/api/tasks", [ECHO] * 1001)
    assert response.status_code == 413 and "1000" in response.json()["error"]


def test_the_producer_client_submits_tasks_that_complete(stack):
    async def produce() -> list[str]:
        async with TaskProducer(as_role("producer"), stack.topics, principal=stack.account("developer", "etl"),
                                key=stack.client_as("developer", "etl").producer_key()) as producer:
            first = await producer.submit(ECHO)
            return [first, *await producer.submit_many([{**ECHO, "name": f"echo-{i}"} for i in range(49)])]

    task_ids = asyncio.run(produce())
    assert len(set(task_ids)) == 50
    completed(stack, task_ids)
    etl = stack.account("developer", "etl")
    sent = [r for r in events_of(stack.bootstrap, stack.topics.task_commands, stack.topics.partitions)
            if r.header(PRINCIPAL_HEADER) == etl]
    assert len(sent) == 50
    assert {r.header("ce_source") for r in sent} == {f"/hive-streams/producer/{etl}"}
    assert {r.event.requester for r in sent} == {etl}
    assert {r.header("hive_seal").split(":")[0] for r in sent} == {"producer"}


def test_a_keyed_submission_repeated_is_one_task(stack):
    first = stack.client.submit(ECHO, idempotency_key="submit-1")
    again = stack.client.submit(ECHO, idempotency_key="submit-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    other = stack.client.submit({**ECHO, "name": "other"}, idempotency_key="submit-1")
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    completed(stack, [first.json()["task_id"]])


def test_the_principal_of_a_request_is_the_requester_and_the_command_principal(stack):
    response = stack.client_as("developer", "dana").submit(ECHO)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    sent = [r for r in events_of(stack.bootstrap, stack.topics.task_commands, stack.topics.partitions)
            if isinstance(r.event, c.SubmitTask) and r.event.task_id == task_id]
    assert [(r.header(PRINCIPAL_HEADER), r.event.requester) for r in sent] == [("tests/dana", "tests/dana")]
    completed(stack, [task_id])
