"""Which records tail, export and stats keep: topics, types, keys, tenants, time ranges; and dead-letter filters."""
import pytest

from hive_streams.analytics.deadletters import Letter, LetterFilter
from hive_streams.analytics.filters import Filter, TenantIndex, parse_time, tenant_of
from hive_streams.domain import events as e
from hive_streams.domain.model import NodeSpec

NOW = 1_800_000_000_000
SUBMITTED = e.TaskSubmitted(task_id="t1", seq=1, at=NOW - 60_000, name="n", requester="acme/alice",
                            nodes=(NodeSpec("a", "echo"),))
COMPLETED = e.TaskCompleted(task_id="t1", seq=2, at=NOW, agent_id="box", outputs=())
HELD = e.EscrowHeld(ledger_id="main", seq=1, at=NOW, escrow_id="x", task_id="t2", requester="globex/bob",
                    agent_id="box", amount=10)
RELEASED = e.EscrowReleased(ledger_id="main", seq=2, at=NOW, escrow_id="x", task_id="t2", agent_id="box",
                            amount=10, fee=0)
BEAT = e.AgentHeartbeat(agent_id="box", seq=3, at=NOW)


def test_times_are_iso_or_durations_before_now():
    assert parse_time("30m", NOW) == NOW - 1_800_000
    assert parse_time("1.5h", NOW) == NOW - 5_400_000
    assert parse_time("2027-01-15T08:00:00Z", NOW) == parse_time("2027-01-15T08:00:00", NOW) == 1_800_000_000_000
    assert parse_time("2027-01-15T09:00:00+01:00", NOW) == 1_800_000_000_000
    with pytest.raises(ValueError):
        parse_time("yesterday", NOW)


def test_topic_families_types_and_keys():
    f = Filter(topics=("task",), types=("TaskCompleted",))
    assert f.matches("hive.task.events", "t1", COMPLETED, "")
    assert not f.matches("hive.task.events", "t1", SUBMITTED, "")
    assert not f.matches("hive.agent.events", "box", BEAT, "")
    assert Filter(topics=("hive.agent.events",)).matches("hive.agent.events", "box", BEAT, "")
    assert Filter(keys=("t2",)).matches("hive.ledger.events", "main", HELD, "")  # the aggregate a ledger entry names
    assert not Filter(keys=("t1",)).matches("hive.ledger.events", "main", HELD, "")


def test_time_range_is_inclusive_then_exclusive():
    f = Filter(since=NOW - 60_000, until=NOW)
    assert f.matches("hive.task.events", "t1", SUBMITTED, "")
    assert not f.matches("hive.task.events", "t1", COMPLETED, "")


def test_tenant_comes_from_the_principal_or_the_task_it_learned():
    index = TenantIndex()
    assert tenant_of("acme/alice") == "acme" and tenant_of("system") == "system"
    assert index.tenant(SUBMITTED) == "acme"
    assert index.tenant(COMPLETED) == "acme"  # learned from the submission
    assert index.tenant(HELD) == "globex"
    assert index.tenant(RELEASED) == "globex"  # learned from the escrow's requester
    assert index.tenant(BEAT) == ""
    assert index.tenant(BEAT, "ops/carol") == "ops"  # a hive_principal header
    assert index.tenant(COMPLETED, "agent:box") == "acme"  # an executor or the fabric acted: still the task's tenant
    assert index.tenant(BEAT, "system:/hive-streams/worker") == ""
    f = Filter(tenant="acme")
    assert f.matches("hive.task.events", "t1", COMPLETED, index.tenant(COMPLETED))
    assert not f.matches("hive.ledger.events", "main", RELEASED, index.tenant(RELEASED))


def letter(source: str, reason: str, timestamp: int, redrives=()) -> Letter:
    headers = (("dlq_reason", reason.encode()), ("dlq_topic", source.encode()))
    return Letter(0, timestamp, b"k", b"", headers, "SubmitTask", None, list(redrives))


def test_dead_letter_filters():
    late = letter("hive.task.commands", "partition 3 is not the default partitioner's", NOW)
    early = letter("hive.ledger.commands", "refused: no principal", NOW - 10_000, ["hive.ledger.commands[0]@7"])
    assert LetterFilter(topic="task").matches(late) and not LetterFilter(topic="task").matches(early)
    assert LetterFilter(topic="hive.ledger.commands").matches(early)
    assert LetterFilter(reason="PARTITION").matches(late) and not LetterFilter(reason="partition").matches(early)
    assert [x for x in (late, early) if LetterFilter(since=NOW - 5_000).matches(x)] == [late]
    assert [x for x in (late, early) if LetterFilter(redriven=True).matches(x)] == [early]


def test_only_commands_from_a_command_topic_are_redriven():
    from hive_streams.analytics.deadletters import NotRedrivable, check_redrivable
    from hive_streams.topics import Topics
    topics = Topics("hive")
    event = Letter(3, NOW, b"t1", b"", (("dlq_topic", b"hive.task.events"),), "TaskCompleted", COMPLETED)
    with pytest.raises(NotRedrivable, match="only commands"):
        check_redrivable(event, topics)
    undecodable = Letter(4, NOW, b"t1", b"x", (("dlq_topic", b"hive.task.commands"),), "undecodable: junk", None)
    with pytest.raises(NotRedrivable, match="not a command"):
        check_redrivable(undecodable, topics)
