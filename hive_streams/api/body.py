"""Reading a body: size cap, JSON or YAML within the bounds of `values`, path-addressed errors."""
from __future__ import annotations

import asyncio
import json

import yaml
from starlette.requests import Request

from .errors import RequestError
from .values import MAX_DEPTH, BoundedLoader, checked

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
DEFINITION_TYPES = JSON_TYPES + YAML_TYPES
BODY_METHODS = ("POST", "PUT", "PATCH")
SMALL_BODY_BYTES = 64_000  # operator and money requests
OFF_LOOP_BYTES = 64_000  # a body larger than this is parsed in a thread


class BodyError(RequestError):
    pass


def check_content_type(request: Request, accepts: tuple[str, ...]) -> None:
    """A state-changing request names a JSON (or YAML) body: a cross-site form cannot send one without a preflight."""
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if request.method not in BODY_METHODS and not has_body:
        return  # a DELETE without a body
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in accepts:
        raise BodyError(415, "Content-Type", f"send the body as {' or '.join(accepts)}, not {kind or 'no type'}")


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
        return parse_json(body)
    try:
        return checked(yaml.load(body, Loader=BoundedLoader))  # YAML is a superset of JSON: the default for other types
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BodyError(400, "$", f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


async def parse_definition_off_loop(body: bytes, content_type: str):
    """A big body is parsed in a thread, so the event loop keeps serving the others meanwhile."""
    if len(body) <= OFF_LOOP_BYTES:
        return parse_definition(body, content_type)
    return await asyncio.to_thread(parse_definition, body, content_type)


def parse_json(raw: bytes):
    try:
        return checked(json.loads(raw))
    except RecursionError:
        raise BodyError(400, "$", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(400, "$", f"invalid JSON: {exc}") from None


def json_object(raw: bytes) -> dict:
    """A small JSON object body (operator and money requests); an empty body is `{}`."""
    body = parse_json(raw or b"{}")
    if not isinstance(body, dict):
        raise BodyError(422, "$", "must be a JSON object")
    return body
