"""What the code generators read from a schema and a domain class: the schema's shape, the class's field hints."""
from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from functools import lru_cache

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
PLAIN = frozenset({str, int, float, bool, type(None)})


class Unsupported(Exception):
    """A schema or class shape the generators leave to the generic path."""


def normalize(schema, named: dict | None = None, seen: frozenset = frozenset()):
    """A parsed Avro schema as nested tuples: ("long",), ("array", t), ("map", t), ("union", (t, ...)),
    ("record", name, ((field, t), ...)). Raises Unsupported for what the generators do not cover."""
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return (schema,)
        if schema not in named:
            raise Unsupported(f"unknown named type {schema}")
        schema = named[schema]
    if isinstance(schema, list):
        return ("union", tuple(normalize(s, named, seen) for s in schema))
    if "logicalType" in schema:
        raise Unsupported("logical types")
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return normalize(kind, named, seen)
    if kind in PRIMITIVES:
        return (kind,)
    if kind == "array":
        return ("array", normalize(schema["items"], named, seen))
    if kind == "map":
        return ("map", normalize(schema["values"], named, seen))
    if kind in ("record", "error"):
        name = schema["name"]
        if name in seen:
            raise Unsupported(f"recursive record {name}")
        named[name] = schema
        return ("record", name, tuple((f["name"], normalize(f["type"], named, seen | {name})) for f in schema["fields"]))
    raise Unsupported(f"Avro type {kind}")


@lru_cache(maxsize=None)
def field_hints(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def buildable(cls: type) -> bool:
    """True when setting every field in __dict__ makes the same object as calling the class."""
    return (dataclasses.is_dataclass(cls) and isinstance(cls, type) and not hasattr(cls, "__post_init__")
            and all("__slots__" not in k.__dict__ for k in cls.__mro__[:-1])
            and all(f.init for f in dataclasses.fields(cls)))


def immutable_value(cls, seen: frozenset = frozenset()) -> bool:
    """A frozen dataclass holding only immutable values: equal ones can be one shared object (a NodeSpec, a
    Hardware, a Requirement), which saves building them and keeps fewer objects alive in the states."""
    if cls in seen or not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen and buildable(cls)):
        return False
    return all(_immutable(hint, seen | {cls}) for hint in field_hints(cls).values())


def _immutable(hint, seen: frozenset) -> bool:
    if hint in PLAIN:
        return True
    if dataclasses.is_dataclass(hint):
        return immutable_value(hint, seen)
    origin = typing.get_origin(hint)
    if origin in (tuple, frozenset, types.UnionType, typing.Union):
        return all(_immutable(a, seen) for a in typing.get_args(hint) if a is not Ellipsis)
    return False


def optional_inner(hint):
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return [a for a in typing.get_args(hint) if a is not type(None)][0]
    return None


def map_value_class(hint):
    """The dataclass of a mapping's values, which records are built into; None for plain values."""
    if typing.get_origin(hint) in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        args = typing.get_args(hint)
        if len(args) == 2 and dataclasses.is_dataclass(args[1]):
            return args[1]
    return None


def is_plain(hint) -> bool:
    """No conversion from the Avro value: what `from_record` leaves as it is."""
    if hint is None or dataclasses.is_dataclass(hint) or hint is float or map_value_class(hint):
        return False
    origin = typing.get_origin(hint)
    if origin in (tuple, frozenset):
        return False
    inner = optional_inner(hint)
    return inner is None or is_plain(inner)
