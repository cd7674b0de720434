"""A refused request: status, the field that is wrong, and why; one handler turns each into JSON."""
from __future__ import annotations

import logging

from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..domain.definition import DefinitionError
from ..exceptions import HiveError

log = logging.getLogger(__name__)


class RequestError(HiveError):
    def __init__(self, status: int, field: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers


def error(status: int, field: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


async def _refused(request: Request, exc: RequestError) -> JSONResponse:
    return error(exc.status, exc.field, exc.message, exc.headers)


async def _invalid_definition(request: Request, exc: DefinitionError) -> JSONResponse:
    return error(422, exc.path, exc.message)


async def _log_unavailable(request: Request, exc: KafkaError) -> JSONResponse:
    log.warning("%s %s: Kafka refused the command: %r", request.method, request.url.path, exc)
    return error(503, "$", "the command log is unavailable; retry (with the same Idempotency-Key)", {"Retry-After": "1"})


HANDLERS = {RequestError: _refused, DefinitionError: _invalid_definition, KafkaError: _log_unavailable}
