"""The door of the schedule, trigger and callback deciders: who may send which command."""
from types import SimpleNamespace

from hive_streams.domain import schedule as s
from hive_streams.domain import trigger as t
from hive_streams.kafka.principal import principal_header
from hive_streams.streams.deciders import callback_aggregate, schedule_aggregate, trigger_aggregate
from hive_streams.domain import callback as cb


def message(principal: str | None = None):
    return SimpleNamespace(headers=[principal_header(principal)] if principal else [])


def test_a_creation_names_its_requester_as_the_principal():
    door = schedule_aggregate(1000).door
    create = s.CreateSchedule("acme:n", "c", 1, "acme/dev", "* * * * *", "UTC", "skip", '{"task":{}}')
    assert door(create, None, message("acme/dev")) == ""
    assert "names no principal" in door(create, None, message())
    assert "was sent by acme/eve" in door(create, None, message("acme/eve"))
    assert door(s.DeleteSchedule("acme:n", "d", 1), None, message("acme/ops")) == ""


def test_a_creation_the_api_would_refuse_is_refused_with_its_reason():
    door = schedule_aggregate(1000).door
    bad_cron = s.CreateSchedule("acme:n", "c", 1, "acme/dev", "every day", "UTC", "skip", '{"task":{}}')
    assert door(bad_cron, None, message("acme/dev")).startswith("cron:")
    bad_zone = s.CreateSchedule("acme:n", "c", 1, "acme/dev", "* * * * *", "Mars/Base", "skip", '{"task":{}}')
    assert door(bad_zone, None, message("acme/dev")).startswith("timezone:")
    foreign = s.CreateSchedule("globex:n", "c", 1, "acme/dev", "* * * * *", "UTC", "skip", '{"task":{}}')
    assert "tenant" in door(foreign, None, message("acme/dev"))
    counted_never = t.CreateTrigger("acme:t", "c", 1, "acme/dev", "TaskFailed", count=0)
    assert "count" in trigger_aggregate().door(counted_never, None, message("acme/dev"))


def test_what_the_worker_sends_names_no_principal():
    fire = s.FireSchedule("acme:n", "f", 1, (1,), (), 1)
    assert schedule_aggregate(1000).door(fire, None, message()) == ""
    assert "worker only" in schedule_aggregate(1000).door(fire, None, message("acme/dev"))
    match = t.NoteTriggerMatch("acme:t", "m", 1, "acme:x/1", "acme:x")
    assert "worker only" in trigger_aggregate().door(match, None, message("acme/dev"))
    report = cb.RecordCallbackAttempt("acme:x/1", "a", 1, 1, 200)
    assert "worker only" in callback_aggregate(1, 1).door(report, None, message("acme/dev"))
    assert callback_aggregate(1, 1).door(report, None, message()) == ""
