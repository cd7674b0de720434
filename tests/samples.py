"""One well-formed event of each audited topic (`Topics.event_topics`), by the event type its topic must hold."""
from __future__ import annotations

from hive_streams.codec.strays import families
from hive_streams.domain import events as e
from hive_streams.domain.callback import CallbackEvent, CallbackRequested
from hive_streams.domain.execution_records import ExecutionEvent, ExecutionStarted
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.domain.model import NodeSpec
from hive_streams.domain.schedule import ScheduleCreated, ScheduleEvent
from hive_streams.domain.trigger import TriggerCreated, TriggerEvent
from hive_streams.topics import Topics


def samples(topics: Topics) -> dict[str, object]:
    """topic -> its event; a topic whose family has no sample here fails with a KeyError."""
    by_type = {e.TaskEvent: e.TaskSubmitted("acme:t1", 1, 1000, "n", "acme/ann", (NodeSpec("a", "echo"),)),
               e.AgentEvent: e.AgentHeartbeat("a1", 1, 1000),
               e.LedgerEvent: e.FundsDeposited(LEDGER_ID, 1, 1000, "acme/ann", 100),
               ExecutionEvent: ExecutionStarted("acme:x1", 1, 1000, "wf", 1, "acme/ann", "{}"),
               ScheduleEvent: ScheduleCreated("acme:s1", 1, 1000, "acme/ann", "* * * * *", "UTC", "none", "{}"),
               TriggerEvent: TriggerCreated("acme:g1", 1, 1000, "acme/ann", "TaskCompleted"),
               CallbackEvent: CallbackRequested("acme:c1", 1, 1000, "https://example.org/hook", "TaskCompleted", "{}"),
               e.AlertEvent: e.AlertRaised("agent-silent:a1", 1, 1000, "agent-silent", "a1", "warning", "silent")}
    return {topic: by_type[family] for topic, family in families(topics).items()}
