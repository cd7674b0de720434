"""Cron slots as UTC instants. Pure: no clock; the caller says what "now" is.

croniter iterates wall-clock times of the schedule's IANA zone (naive datetimes), and each one
is mapped to an instant with zoneinfo:
- a wall time that occurs twice (the hour repeated when clocks go back) fires once, at its first
  occurrence;
- a wall time that does not exist (the hour skipped when clocks go forward) fires the gap's length
  later (02:30 becomes 03:30), and an instant already fired is not fired again.
So slots are strictly increasing instants. Expressions have 5 fields, or 6 with seconds last.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from ..exceptions import HiveError

MAX_CATCH_UP = 100  # most missed slots the `all` policy runs; older ones are skipped
POLICIES = ("skip", "once", "all")
_ONE_MS = timedelta(milliseconds=1)
_STEPS = 4 * MAX_CATCH_UP + 2 * 3600  # candidates looked at per call: enough to cross an hour of seconds


class CronError(HiveError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check(expr: str, zone: str) -> None:
    """Raises CronError naming the field (`cron` or `timezone`) that is wrong."""
    if not isinstance(expr, str) or not croniter.is_valid(expr) or len(expr.split()) not in (5, 6):
        raise CronError("cron", f"{expr!r} is not a cron expression (5 fields, or 6 with seconds last)")
    _zone(zone)


def _zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CronError("timezone", f"{zone!r} is not an IANA time zone (such as Europe/Berlin or UTC)") from None


def _instant(wall: datetime, tz: ZoneInfo) -> int:
    """Epoch ms of a naive wall time in tz: the first occurrence of a repeated time, a skipped time shifted
    forward by the gap (zoneinfo's fold=0 reading)."""
    return int(wall.replace(tzinfo=tz, fold=0).timestamp() * 1000)


def _wall(at_ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, tz).replace(tzinfo=None)


def slots_after(expr: str, zone: str, after_ms: int, until_ms: int, limit: int) -> list[int]:
    """Up to `limit` slots in (after_ms, until_ms], oldest first."""
    tz = _zone(zone)
    it = croniter(expr, _wall(after_ms, tz))
    out: list[int] = []
    last = after_ms
    try:
        for _ in range(_STEPS + limit):
            at = _instant(it.get_next(datetime), tz)
            if at > until_ms or len(out) >= limit:
                break
            if at > last:
                out.append(at)
                last = at
    except CroniterBadDateError:  # an expression that never matches again (30 February)
        pass
    return out


def slots_before(expr: str, zone: str, until_ms: int, after_ms: int, limit: int) -> list[int]:
    """Up to `limit` slots in (after_ms, until_ms], newest first."""
    tz = _zone(zone)
    it = croniter(expr, _wall(until_ms, tz) + _ONE_MS)  # until_ms itself may be a slot
    out: list[int] = []
    try:
        for _ in range(_STEPS + limit):
            at = _instant(it.get_prev(datetime), tz)
            if at <= after_ms or len(out) >= limit:
                break
            if at <= until_ms and (not out or at < out[-1]):
                out.append(at)
    except CroniterBadDateError:
        pass
    return out


@lru_cache(maxsize=4096)
def next_slot(expr: str, zone: str, after_ms: int) -> int | None:
    """The first slot after `after_ms`, or None when there is none within the look-ahead."""
    found = slots_after(expr, zone, after_ms, 2 ** 62, 1)
    return found[0] if found else None


@dataclass(frozen=True)
class Plan:
    """What a schedule does at `now`: the slots it fires, the missed ones it skips, and the latest slot it accounts
    for (its next plan starts after it). `skip` lists skipped slots only up to MAX_CATCH_UP."""
    fire: tuple[int, ...] = ()
    skip: tuple[int, ...] = ()
    through: int = 0

    @property
    def empty(self) -> bool:
        return not self.fire and not self.skip and not self.through


def plan(expr: str, zone: str, policy: str, last_ms: int, now_ms: int, grace_ms: int) -> Plan:
    """The slots in (last_ms, now_ms]. A slot older than `grace_ms` at `now_ms` was missed (the worker was down,
    or the partition was moving); the policy says what happens to missed slots: `skip` none run, `once` the
    latest runs, `all` each runs, the most recent MAX_CATCH_UP of them (older ones are skipped). Slots within
    the grace always run."""
    if policy not in POLICIES:
        raise CronError("catchup", f"{policy!r} is not one of {', '.join(POLICIES)}")
    recent = slots_before(expr, zone, now_ms, last_ms, MAX_CATCH_UP + 1)  # newest first
    if not recent:
        return Plan()
    recent = recent[:MAX_CATCH_UP]
    on_time = [s for s in recent if now_ms - s <= grace_ms]
    missed = [s for s in recent if now_ms - s > grace_ms]
    if policy == "all":
        run, skipped = missed, []
    elif policy == "once":
        run, skipped = missed[:1], missed[1:]
    else:
        run, skipped = [], missed
    fire = tuple(sorted(run + on_time))
    skip = tuple(sorted(skipped))
    return Plan(fire, skip, recent[0])


def to_iso(at_ms: int, zone: str = "UTC") -> str:
    return datetime.fromtimestamp(at_ms / 1000, timezone.utc).astimezone(_zone(zone)).isoformat(timespec="seconds")
