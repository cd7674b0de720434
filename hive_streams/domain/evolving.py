"""The folds' hot path: one copy of a frozen state per event, changing only the fields the event changes.

Each aggregate registers one handler per event type; a handler returns the fields its event changes, as a
dict (or None when the event changes nothing but the aggregate's seq). `quick_init` makes the states, which
every fold starts from, cheap to create."""
from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

_new = object.__new__
_set = object.__setattr__


def copy_with(state, changes: dict | None = None, /, **more):
    """`dataclasses.replace` without re-running __init__ over every field: one dict copy.

    Valid for frozen dataclasses without __post_init__, slots or init=False fields, which the states are."""
    fields = state.__dict__.copy()
    if changes:
        fields.update(changes)
    if more:
        fields.update(more)
    new = _new(state.__class__)
    _set(new, "__dict__", fields)
    return new


class Handlers(dict):
    """Event type -> handler(event, state) -> the fields it changes. An event type without a handler of its own
    gets the handler of its nearest registered base class (as singledispatch did), else `fallback`, else a
    TypeError."""

    def __init__(self, aggregate: str, fallback: Callable | None = None):
        super().__init__()
        self.aggregate = aggregate
        self.fallback = fallback

    def on(self, event_type: type):
        def register(handler: Callable) -> Callable:
            self[event_type] = handler
            return handler
        return register

    def __missing__(self, event_type: type) -> Callable:
        for base in event_type.__mro__[1:]:
            if base in self:
                handler = self[event_type] = self[base]
                return handler
        if self.fallback is not None:
            return self.fallback
        raise TypeError(f"unknown {self.aggregate} event {event_type.__name__}")

    def __call__(self, event, state) -> dict | None:
        """The fields event changes in state."""
        return self[event.__class__](event, state)


_FACTORY = getattr(dataclasses, "_HAS_DEFAULT_FACTORY", object())  # shown as <factory>, as dataclass shows it


def quick_init(cls: type) -> type:
    """Gives a frozen dataclass an __init__ that fills __dict__ in one step instead of one
    `object.__setattr__` per field: the same parameters, defaults and factories, the same objects.

    For the states, which every fold starts from. A class with __post_init__, slots, InitVars or
    keyword-only parameters is left as it is."""
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    if (hasattr(cls, "__post_init__") or params != [f.name for f in fields] or any(f.kw_only for f in fields)
            or any("__slots__" in k.__dict__ for k in cls.__mro__[:-1])):
        return cls
    ns = {"_set": _set, "_FACTORY": _FACTORY}
    params, items = [], []
    for i, f in enumerate(fields):
        if f.default is not dataclasses.MISSING:
            ns[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
            items.append(f"{f.name!r}: {f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_f{i}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            items.append(f"{f.name!r}: _f{i}() if {f.name} is _FACTORY else {f.name}")
        else:
            params.append(f.name)
            items.append(f"{f.name!r}: {f.name}")
    source = (f"def __init__(self, {', '.join(params)}):\n"
              f"    _set(self, '__dict__', {{{', '.join(items)}}})\n")
    exec(source, ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    cls.__init__ = init
    return cls


def quick_init_all(namespace: dict) -> None:
    """`quick_init` for every dataclass a module defines: its events or commands, made by every decision."""
    module = namespace["__name__"]
    for value in list(namespace.values()):
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module:
            quick_init(value)
