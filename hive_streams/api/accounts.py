"""Money over HTTP: deposits (an operator action), withdrawals, balances, a task's payments."""
from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..domain import commands as c
from ..domain.ledger import EXTERNAL, LEDGER_ID, cents
from ..store import payments
from .body import json_object
from .commands import CommandRequest
from .errors import RequestError

MAX_AMOUNT = 1_000_000_000


def routes(api) -> list[Route]:
    def amount_of(body: dict) -> float:
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 < amount <= MAX_AMOUNT:
            raise RequestError(422, "amount", f"must be a number above 0 and at most {MAX_AMOUNT}")
        if cents(amount) != round(amount * 100, 6):
            raise RequestError(422, "amount", "has more than two decimals")
        return amount

    def account_of(call: CommandRequest) -> str:
        account_id = call.request.path_params["account_id"]
        if account_id == EXTERNAL:
            raise RequestError(422, "account_id", f"{EXTERNAL!r} is the ledger's contra account")
        return account_id

    async def deposit(call: CommandRequest) -> JSONResponse:
        token = api.settings.operator_token
        if token and not hmac.compare_digest(call.request.headers.get("x-hive-operator", ""), token):
            raise RequestError(403, "X-Hive-Operator", "deposits are an operator action: send the operator token")
        body = json_object(call.body)
        amount, account_id = amount_of(body), account_of(call)
        reference = str(body.get("reference", ""))[:200]
        command = c.DepositFunds(LEDGER_ID, call.ids.command_id(), api.now(), account_id, cents(amount), reference)
        await api.send(command, call.caller)
        return JSONResponse({"account": account_id, "amount": amount, "status": "accepted"}, status_code=202)

    async def withdraw(call: CommandRequest) -> JSONResponse:
        amount, account_id = amount_of(json_object(call.body)), account_of(call)
        await api.send(c.WithdrawFunds(LEDGER_ID, call.ids.command_id(), api.now(), account_id, cents(amount)),
                       call.caller)
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
        api.command_route("/api/accounts/{account_id}/deposits", deposit, "POST"),
        api.command_route("/api/accounts/{account_id}/withdrawals", withdraw, "POST"),
        Route("/api/accounts/{account_id}", account, methods=["GET"]),
        Route("/api/tasks/{task_id}/payments", task_payments, methods=["GET"]),
    ]
