"""Money over HTTP: deposits (an admin's action), withdrawals, balances, a task's payments.

An account id is `<tenant>/<sub>` for principals (it has a slash), an agent's id for agents."""
from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..auth import permissions as p
from ..domain import commands as c
from ..domain.ledger import EXTERNAL, LEDGER_ID, cents
from ..store import payments
from ..domain.fields import Field
from .guard import Body
from .commands import CommandRequest
from .errors import RequestError
from .history import point_of
from .owners import account_owner, task_owner
from .params import POINT, TENANT
from .tenants import task_id_of

MAX_AMOUNT = 1_000_000_000
AMOUNT = Field(("number",), 0, MAX_AMOUNT, exclusive_minimum=True, required=True, doc="at most two decimals")
DEPOSIT = Field(("object",), properties={"amount": AMOUNT, "reference": Field(("string",), max_length=200)})
WITHDRAWAL = Field(("object",), properties={"amount": AMOUNT})


def routes(api) -> list[Route]:
    def amount_of(body: dict) -> float:
        amount = body["amount"]
        if cents(amount) != round(amount * 100, 6):
            raise RequestError(422, "amount", "has more than two decimals")
        return amount

    def account_of(call: CommandRequest) -> str:
        account_id = call.request.path_params["account_id"]
        if account_id == EXTERNAL:
            raise RequestError(422, "account_id", f"{EXTERNAL!r} is the ledger's contra account")
        return account_id

    async def deposit(call: CommandRequest) -> JSONResponse:
        body = call.data
        amount, account_id = amount_of(body), account_of(call)
        reference = body.get("reference", "")
        command = c.DepositFunds(LEDGER_ID, call.ids.command_id(), api.now(), account_id, cents(amount), reference)
        await api.send(command, call)
        return JSONResponse({"account": account_id, "amount": amount, "status": "accepted"}, status_code=202)

    async def withdraw(call: CommandRequest) -> JSONResponse:
        amount, account_id = amount_of(call.data), account_of(call)
        await api.send(c.WithdrawFunds(LEDGER_ID, call.ids.command_id(), api.now(), account_id, cents(amount)),
                       call)
        return JSONResponse({"account": account_id, "amount": amount, "status": "accepted"}, status_code=202)

    async def account(request: Request) -> JSONResponse:
        account_id = request.path_params["account_id"]
        point = point_of(request)
        if point is not None:
            return JSONResponse(await api.history.account(account_id, point))
        found = await asyncio.to_thread(api.read, payments.account, account_id)
        if found is None:
            return api.error(404, "account_id", f"no account {account_id!r} (accounts appear with their first entry)")
        return JSONResponse(found)

    async def task_payments(request: Request) -> JSONResponse:
        task_id = task_id_of(request)
        return JSONResponse({"task_id": task_id,
                             "payments": await asyncio.to_thread(api.read, payments.task_payments, task_id)})

    own = account_owner()
    return [
        api.command_route("/api/accounts/{account_id:path}/deposits", deposit, "POST", p.ACCOUNTS_DEPOSIT,
                          body=Body.of(DEPOSIT), summary="credit an account"),
        api.command_route("/api/accounts/{account_id:path}/withdrawals", withdraw, "POST", p.ACCOUNTS_WITHDRAW, own,
                          body=Body.of(WITHDRAWAL), summary="take money out of an account"),
        api.route("/api/accounts/{account_id:path}", account, "GET", p.ACCOUNTS_VIEW, own, POINT,
                  "a balance; ?as_of= or ?at_seq=: as it was then, from the log"),
        api.route("/api/tasks/{task_id}/payments", task_payments, "GET", p.EXECUTIONS_VIEW, task_owner(api),
                  (TENANT,), "a task's payments"),
    ]
