"""Signed callbacks: which status changes call back (asked by the deciders), and the deliverer that POSTs them.

A task's or schedule's decider writes a RequestCallback for each status change of an aggregate that names
a callback URL, in the same transaction as the event. The worker that owns a delivery's partition POSTs
it through the egress policy, signed with HMAC-SHA256 (`X-Hive-Signature: sha256=<hex>`), and reports
each attempt back to the delivery's aggregate, which schedules the next or gives up.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time

from ..cancelling import cancel_all
from ..domain import callback as cb
from ..domain import schedule
from ..domain.tenancy import task_tenant
from ..egress import EgressDenied, EgressError, EgressPolicy
from ..kafka import now_ms
from ..settings import Settings

log = logging.getLogger(__name__)
STUCK_SECONDS = 120.0  # an attempt not reported after this is made again
ERROR_CHARS = 500


def task_callbacks(event, before, after) -> list[cb.RequestCallback]:
    """A RequestCallback when the event changed the task's status and the task names a callback URL."""
    if not after.callback_url or before.status == after.status:
        return []
    delivery = f"{after.task_id}/{event.seq}"
    body = cb.delivery_body(delivery, event, "task_id", after.task_id, after.status, before.status,
                            reason=getattr(event, "reason", "") or "")
    return [cb.RequestCallback(delivery, f"callback:{delivery}", event.at, after.callback_url,
                               type(event).__name__, body, task_tenant(after.task_id))]


def schedule_callbacks(event, before, after) -> list[cb.RequestCallback]:
    """Every event of a schedule that names a callback URL: created, each slot fired or skipped, deleted."""
    if not after.callback_url:
        return []
    delivery = f"{after.schedule_id}/{event.seq}"
    extra = {"slot_at": event.slot_at, "submitted": event.task_id} if isinstance(event, schedule.ScheduleFired) else {}
    body = cb.delivery_body(delivery, event, "schedule_id", after.schedule_id, after.status, before.status, **extra)
    return [cb.RequestCallback(delivery, f"callback:{delivery}", event.at, after.callback_url,
                               type(event).__name__, body, task_tenant(after.schedule_id))]


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_secrets(text: str) -> dict[str, str]:
    """`tenant=secret,tenant=secret` -> {tenant: secret}."""
    pairs = (item.partition("=") for item in text.split(",") if item.strip())
    return {tenant.strip(): secret.strip() for tenant, _, secret in pairs if secret.strip()}


class Deliverer:
    """Makes the attempts that are due for the deliveries of the partitions this worker owns."""

    def __init__(self, settings: Settings, sender):
        self.policy = EgressPolicy.from_settings(settings)
        self.secret = settings.callback_secret
        self.secrets = parse_secrets(settings.callback_secrets)
        self.sender = sender
        self.in_flight: dict[str, tuple[int, float]] = {}  # delivery id -> (attempt, when it started)
        self.tasks: set[asyncio.Task] = set()

    def secret_for(self, tenant: str) -> str:
        return self.secrets.get(tenant, self.secret)

    def poll(self, states, now: int) -> None:
        for state in states:
            if not isinstance(state, cb.CallbackState) or not state.pending or state.next_at > now:
                continue
            attempt = state.attempts + 1
            flying = self.in_flight.get(state.delivery_id)
            if flying and flying[0] == attempt and time.monotonic() - flying[1] < STUCK_SECONDS:
                continue  # made already; its report has not been decided yet
            self.in_flight[state.delivery_id] = (attempt, time.monotonic())
            task = asyncio.create_task(self._attempt(state, attempt), name=f"callback {state.delivery_id}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _attempt(self, state: cb.CallbackState, attempt: int) -> None:
        status, error, retry = await self.post(state)
        report = cb.RecordCallbackAttempt(state.delivery_id, f"attempt:{state.delivery_id}:{attempt}", now_ms(),
                                          attempt, status, error[:ERROR_CHARS], retry)
        try:
            await self.sender.send_and_wait(report)
        except Exception:  # the attempt is made again once STUCK_SECONDS have passed
            log.exception("could not report callback attempt %s of %s", attempt, state.delivery_id)

    async def post(self, state: cb.CallbackState) -> tuple[int, str, bool]:
        """(HTTP status or 0, error, whether another attempt may help)."""
        secret = self.secret_for(state.tenant)
        if not secret:
            return 0, "no callback secret is configured (HIVE_CALLBACK_SECRET)", False
        body = state.body_json.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "hive-streams-callbacks",
                   "X-Hive-Signature": signature(secret, body), "X-Hive-Delivery": state.delivery_id,
                   "X-Hive-Event": state.event_type}
        try:
            response = await self.policy.fetch("POST", state.url, content=body, headers=headers)
        except EgressDenied as exc:
            return 0, str(exc), False
        except EgressError as exc:
            return 0, str(exc), True
        return response.status, "" if response.status < 300 else response.body[:200].decode(errors="replace"), True

    async def stop(self) -> None:
        await cancel_all(list(self.tasks))
