"""Time travel: a task, an agent or an account as it was at `?as_of=<ISO time>` or `?at_seq=<n>`, folded from
the log with the domain's own `evolve` (the read models answer only the present)."""
from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta, timezone

from aiokafka import TopicPartition
from starlette.requests import Request

from ..codec import event_id
from ..codec.avro import to_record
from ..domain import agent, ledger, task
from ..domain.history import Point, fold_to
from ..kafka.access import access_for
from ..kafka.history import events_of
from ..store import queries
from ..topics import partition_for
from .errors import RequestError

PARAMETERS = ("as_of", "at_seq")
HISTORY_LIMIT = 200
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def point_of(request: Request) -> Point | None:
    """The point the query names, None for the present; a bad or doubled one is a 400 naming its parameter."""
    given = {name: request.query_params[name] for name in PARAMETERS if name in request.query_params}
    if not given:
        return None
    if len(given) > 1:
        raise RequestError(400, "at_seq", "give as_of or at_seq, not both")
    if "as_of" in given:
        return Point(as_of=parse_time(given["as_of"]))
    text = given["at_seq"]
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise RequestError(400, "at_seq", f"must be a whole number from 1 (the aggregate's seq), not {text!r}")
    return Point(at_seq=int(text))


def parse_time(text: str) -> int:
    """An ISO 8601 time (UTC unless it says otherwise) as epoch ms."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(400, "as_of", f"must be an ISO 8601 time such as 2026-01-31T12:00:00Z, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // timedelta(milliseconds=1)  # exact: no float rounding


def describe(point: Point) -> dict:
    if point.at_seq is not None:
        return {"at_seq": point.at_seq}
    return {"as_of": datetime.fromtimestamp(point.as_of / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")}


def _none_then(point: Point) -> RequestError:
    field = "at_seq" if point.at_seq is not None else "as_of"
    return RequestError(404, field, "it had no events by then")


class History:
    def __init__(self, api):
        self.api, self.topics = api, api.topics

    @functools.cached_property
    def kafka(self):
        """The API's own credentials, read when first needed (an app can be made without a broker)."""
        return access_for(self.api.settings, "api")

    async def _events(self, topic: str, partitions: int, key: str, point: Point, start=None) -> list:
        tp = TopicPartition(topic, start[0] if start else partition_for(key.encode(), partitions))
        return await events_of(self.kafka, self.api.codec, tp, key.encode(), point, start[1] if start else None)

    async def task(self, task_id: str, point: Point) -> dict:
        start = await asyncio.to_thread(self.api.read, queries.task_start, task_id)
        events = await self._events(self.topics.task_events, self.topics.partitions, task_id, point, start)
        if not events:
            raise _none_then(point)
        state = fold_to(task.TaskState(task_id), events, task.evolve, point)
        return {**queries.task_view(to_record(state)), **describe(point)}

    async def agent(self, agent_id: str, point: Point) -> dict:
        events = await self._events(self.topics.agent_events, self.topics.partitions, agent_id, point)
        if not events:
            raise _none_then(point)
        state = fold_to(agent.AgentState(agent_id), events, agent.evolve, point)
        return {**queries.agent_view(to_record(state)), **describe(point)}

    async def account(self, account_id: str, point: Point) -> dict:
        events = await self._events(self.topics.ledger_events, 1, ledger.LEDGER_ID, point)
        state = fold_to(ledger.LedgerState(), events, ledger.evolve, point)
        mine = [ev for ev in events if account_id in ledger.touched_accounts(ev)]
        if not mine:
            raise _none_then(point)
        available, held = state.balance(account_id)
        return {"account": account_id, "available": available / 100, "held": held / 100,
                "balance": (available + held) / 100, "seq": state.seq, **describe(point),
                "history": [entry(ev) for ev in reversed(mine[-HISTORY_LIMIT:])]}


def entry(ev) -> dict:
    """A ledger event as `store.payments` shows an entry, in units."""
    return {"event_id": event_id(ev), "type": type(ev).__name__, "task_id": getattr(ev, "task_id", None),
            "escrow_id": getattr(ev, "escrow_id", None), "amount": getattr(ev, "amount", 0) / 100,
            "reason": getattr(ev, "reason", ""), "at": ev.at,
            "legs": [{"account": leg.account, "bucket": leg.bucket, "delta": leg.delta / 100}
                     for leg in getattr(ev, "legs", ())]}
