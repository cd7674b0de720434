"""Reading a task definition from a request: size cap, JSON or YAML, path-addressed errors."""
from __future__ import annotations

import json

import yaml
from starlette.requests import Request

from .errors import RequestError

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
SMALL_BODY_BYTES = 64_000  # operator and money requests


class BodyError(RequestError):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "$", f"body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "$", f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_definition(body: bytes, content_type: str):
    if not body.strip():
        raise BodyError(400, "$", "empty body: send a task definition as JSON or YAML")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(400, "$", f"invalid JSON: {exc}") from None
    try:
        return yaml.safe_load(body)  # YAML is a superset of JSON: the default for other types
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BodyError(400, "$", f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def json_object(raw: bytes) -> dict:
    """A small JSON object body (operator and money requests); an empty body is `{}`."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(400, "$", f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BodyError(422, "$", "must be a JSON object")
    return body
