"""Channel reducers: how the writes of one step merge into a channel's value. Pure.

Writes arrive in task-ordinal order; every reducer is a left fold over them, so the same writes in
the same order always give the same value, whatever order their tasks finished in.
"""
from __future__ import annotations

import json
from typing import Any

REDUCERS = ("replace", "append", "sum", "min", "max", "merge-map", "set-union")
DEFAULTS = {"replace": None, "append": [], "sum": 0, "min": None, "max": None, "merge-map": {}, "set-union": []}


class ReducerError(ValueError):
    pass


def default_initial(reducer: str) -> Any:
    return json.loads(json.dumps(DEFAULTS[reducer]))


def _number(value: Any, reducer: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReducerError(f"{reducer} needs numbers, got {json.dumps(value)[:80]}")
    return value


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def reduce_one(reducer: str, current: Any, write: Any) -> Any:
    if reducer == "replace":
        return write
    if reducer == "append":
        return [*(current or []), write]
    if reducer == "sum":
        return _number(current or 0, reducer) + _number(write, reducer)
    if reducer in ("min", "max"):
        if current is None:
            return _number(write, reducer)
        pick = min if reducer == "min" else max
        return pick(_number(current, reducer), _number(write, reducer))
    if reducer == "merge-map":
        if not isinstance(write, dict):
            raise ReducerError(f"merge-map needs a mapping, got {json.dumps(write)[:80]}")
        return {**(current or {}), **write}
    if reducer == "set-union":
        items = write if isinstance(write, list) else [write]
        merged = {_key(v): v for v in [*(current or []), *items]}
        return [merged[k] for k in sorted(merged)]
    raise ReducerError(f"unknown reducer {reducer!r}")


def reduce_all(reducer: str, current: Any, writes: list) -> Any:
    value = current
    for write in writes:
        value = reduce_one(reducer, value, write)
    return value
