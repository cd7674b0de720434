"""Which records a reader wants: topics, types, keys, a tenant and a time range. Pure: no IO, no clock."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from ..kafka.principal import acts_for_account

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now_ms: int) -> int:
    """An ISO 8601 time (UTC when it names no zone) or a duration before now (`90s`, `30m`, `2h`, `7d`), in ms."""
    match = DURATION.match(text.strip())
    if match:
        return now_ms - int(float(match[1]) * UNIT_SECONDS[match[2]] * 1000)
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor a duration like 30m") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp() * 1000)


def family(topic: str) -> str:
    """`hive.task.events` -> `task`; `hive.alerts` -> `alerts`."""
    parts = topic.split(".")
    return parts[-2] if parts[-1] == "events" and len(parts) > 1 else parts[-1]


def tenant_of(principal: str) -> str:
    """`acme/alice` -> `acme`; a principal without a tenant is its own."""
    return principal.split("/", 1)[0]


def _aggregate(obj) -> str:
    for name in ("task_id", "agent_id", "ledger_id", "execution_id", "schedule_id", "trigger_id", "delivery_id",
                 "alert_id"):
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return ""


class TenantIndex:
    """Learns each task's tenant from the records that name its requester, so later records of the task have one."""

    def __init__(self):
        self.tasks: dict[str, str] = {}

    def tenant(self, obj, principal: str | None = None) -> str:
        """The tenant of a record: the requester or account it names, its `hive_principal` header when that is an
        account (events caused by an executor or the fabric name `agent:` or `system:`), or its task's."""
        account = principal if acts_for_account(principal) else ""
        requester = getattr(obj, "requester", "") or getattr(obj, "account", "") or account
        task_id = getattr(obj, "task_id", None)
        if requester and task_id and getattr(obj, "requester", ""):
            self.tasks.setdefault(task_id, tenant_of(requester))
        if requester:
            return tenant_of(requester)
        return self.tasks.get(task_id, "") if task_id else ""


@dataclass(frozen=True)
class Filter:
    topics: tuple[str, ...] = ()  # full names or families (`task`, `schedule`, ..., `alerts`)
    types: tuple[str, ...] = ()  # short names, `TaskCompleted`
    keys: tuple[str, ...] = ()
    tenant: str = ""
    since: int | None = None  # ms, inclusive
    until: int | None = None  # ms, exclusive

    def wants_topic(self, topic: str) -> bool:
        return not self.topics or any(topic == t or family(topic) == t for t in self.topics)

    def matches(self, topic: str, key: str, obj, tenant: str) -> bool:
        at = getattr(obj, "at", None)
        return (self.wants_topic(topic)
                and (not self.types or type(obj).__name__ in self.types)
                and (not self.keys or key in self.keys or _aggregate(obj) in self.keys)
                and (not self.tenant or tenant == self.tenant)
                and (self.since is None or (at is not None and at >= self.since))
                and (self.until is None or (at is not None and at < self.until)))
