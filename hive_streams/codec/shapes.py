"""Whether a decoded object holds what its type hints promise: what a JSON document cannot say by itself.

Checked the way Python reads hints: an int is a float, a bool an int. A dataclass must be that very class.
Each hint's check is made once; an object met twice (a need many waiting tasks share) is checked once. A value
that does not fit raises ShapeError naming where it is.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache


class ShapeError(ValueError):
    def __init__(self, where: list[str], expected: str, value):
        self.where, self.expected, self.value = where, expected, value
        super().__init__(self._say())

    def within(self, step: str) -> "ShapeError":
        self.where.append(step)
        self.args = (self._say(),)
        return self

    def _say(self) -> str:
        return f"${''.join(reversed(self.where))}: {type(self.value).__name__} where {self.expected} belongs"


def check(value, hint) -> None:
    """Raises ShapeError unless `value` fits `hint`."""
    _checker(hint)(value, set())


@lru_cache(maxsize=None)
def _checker(hint):
    if hint is typing.Any or hint is object:
        return lambda v, seen: None
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return _union(args)
    if origin is tuple:
        return _tuple(args)
    if origin in (list, set, frozenset):
        return _items(origin, args[0] if args else typing.Any)
    if origin is dict:
        return _mapping(*(args or (typing.Any, typing.Any)))
    if hint is float:
        return _instance((int, float), "float")
    if isinstance(hint, type):
        return _instance(hint, hint.__name__)
    raise TypeError(f"no shape check for {hint!r}")


def _instance(kind, name: str):
    def fits(v, seen):
        if not isinstance(v, kind):
            raise ShapeError([], name, v)
    return fits


def _dataclass(cls):
    hints = typing.get_type_hints(cls)
    fields = [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]
    checks: list = []

    def fits(v, seen):
        if type(v) is not cls:
            raise ShapeError([], cls.__name__, v)
        if id(v) in seen:
            return
        if not checks:  # made on first use: a hint may name this class again
            checks.extend((name, _checker(h)) for name, h in fields)
        for name, fit in checks:
            try:
                fit(getattr(v, name), seen)
            except ShapeError as exc:
                raise exc.within(f".{name}") from None
        seen.add(id(v))  # the whole tree is alive while it is checked: no id is reused meanwhile
    return fits


def _union(args):
    options = [_checker(a) for a in args if a is not type(None)]
    optional = type(None) in args
    names = " or ".join(getattr(a, "__name__", str(a)) for a in args)

    def fits(v, seen):
        if v is None and optional:
            return
        for option in options:
            try:
                option(v, seen)
                return
            except ShapeError:
                continue
        raise ShapeError([], names, v)
    return fits


def _tuple(args):
    if len(args) == 2 and args[1] is Ellipsis:
        return _items(tuple, args[0])
    each = [_checker(a) for a in args]

    def fits(v, seen):
        if not isinstance(v, tuple) or len(v) != len(each):
            raise ShapeError([], f"a tuple of {len(each)}", v)
        for i, (item, fit) in enumerate(zip(v, each)):
            try:
                fit(item, seen)
            except ShapeError as exc:
                raise exc.within(f"[{i}]") from None
    return fits


def _items(kind, item_hint):
    fit = _checker(item_hint)

    def fits(v, seen):
        if not isinstance(v, kind):
            raise ShapeError([], kind.__name__, v)
        for i, item in enumerate(v):
            try:
                fit(item, seen)
            except ShapeError as exc:
                raise exc.within(f"[{i}]") from None
    return fits


def _mapping(key_hint, value_hint):
    fit_key, fit_value = _checker(key_hint), _checker(value_hint)

    def fits(v, seen):
        if not isinstance(v, dict):
            raise ShapeError([], "dict", v)
        for key, value in v.items():
            try:
                fit_key(key, seen)
                fit_value(value, seen)
            except ShapeError as exc:
                raise exc.within(f"[{key!r}]") from None
    return fits
