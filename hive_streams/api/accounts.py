"""Money over HTTP: deposits (an operator action), withdrawals, balances, a task's payments."""
from __future__ import annotations

import asyncio
import hmac
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..domain import commands as c
from ..domain.ledger import EXTERNAL, LEDGER_ID, cents
from ..store import payments
from .body import BodyError, json_object

MAX_AMOUNT = 1_000_000_000


def routes(api) -> list[Route]:
    async def amount_of(request: Request) -> tuple[float | None, dict | JSONResponse]:
        try:
            body = await json_object(request)
        except BodyError as exc:
            return None, api.error(exc.status, exc.field, exc.message)
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 < amount <= MAX_AMOUNT:
            return None, api.error(422, "amount", f"must be a number above 0 and at most {MAX_AMOUNT}")
        if cents(amount) != round(amount * 100, 6):
            return None, api.error(422, "amount", "has more than two decimals")
        return amount, body

    def bad_account(account_id: str) -> JSONResponse | None:
        if account_id == EXTERNAL:
            return api.error(422, "account_id", f"{EXTERNAL!r} is the ledger's contra account")
        return None

    async def send(command) -> None:
        key, value, headers = api.codec.message(command, "/hive-streams/api")
        await api.producer.send_and_wait(api.topics.ledger_commands, value, key=key, headers=headers)

    async def deposit(request: Request) -> JSONResponse:
        token = api.settings.operator_token
        if token and not hmac.compare_digest(request.headers.get("x-hive-operator", ""), token):
            return api.error(403, "X-Hive-Operator", "deposits are an operator action: send the operator token")
        account_id = request.path_params["account_id"]
        amount, body = await amount_of(request)
        if amount is None:
            return body
        if (refused := bad_account(account_id)) is not None:
            return refused
        reference = str(body.get("reference", ""))[:200]
        await send(c.DepositFunds(LEDGER_ID, uuid.uuid4().hex, api.now(), account_id, cents(amount), reference))
        return JSONResponse({"account": account_id, "amount": amount, "status": "accepted"}, status_code=202)

    async def withdraw(request: Request) -> JSONResponse:
        account_id = request.path_params["account_id"]
        amount, body = await amount_of(request)
        if amount is None:
            return body
        if (refused := bad_account(account_id)) is not None:
            return refused
        await send(c.WithdrawFunds(LEDGER_ID, uuid.uuid4().hex, api.now(), account_id, cents(amount)))
        return JSONResponse({"account": account_id, "amount": amount, "status": "accepted"}, status_code=202)

    async def account(request: Request) -> JSONResponse:
        account_id = request.path_params["account_id"]
        found = await asyncio.to_thread(api.read, payments.account, account_id)
        if found is None:
            return api.error(404, "account_id", f"no account {account_id!r} (accounts appear with their first entry)")
        return JSONResponse(found)

    async def task_payments(request: Request) -> JSONResponse:
        task_id = request.path_params["task_id"]
        return JSONResponse({"task_id": task_id,
                             "payments": await asyncio.to_thread(api.read, payments.task_payments, task_id)})

    return [
        Route("/api/accounts/{account_id}/deposits", deposit, methods=["POST"]),
        Route("/api/accounts/{account_id}/withdrawals", withdraw, methods=["POST"]),
        Route("/api/accounts/{account_id}", account, methods=["GET"]),
        Route("/api/tasks/{task_id}/payments", task_payments, methods=["GET"]),
    ]



