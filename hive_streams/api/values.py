"""Bounds every parsed body keeps: nesting depth, finite numbers, integers a long can carry, and YAML
aliases counted before anything expands them."""
from __future__ import annotations

import math

import yaml
from yaml.events import AliasEvent
from yaml.nodes import CollectionNode

from ..domain.fields import LONG_MAX, LONG_MIN
from .errors import RequestError

MAX_DEPTH = 64  # levels of lists and mappings
MAX_ALIASES = 100  # alias uses in one YAML document
MAX_EXPANDED = 100_000  # nodes of a YAML document once every alias is expanded


class ValueRefused(RequestError):
    pass


def _refuse(path: str, message: str):
    raise ValueRefused(422 if path != "$" else 400, path, message)


def _at(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return str(key) if path == "$" else f"{path}.{key}"


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored as text (PostgreSQL holds no NUL; UTF-8 has no lone surrogates), or None."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def checked(value):
    """The value when every number in it is finite and fits a long or a double, every string (and key) is text
    that can be stored, and it nests at most MAX_DEPTH levels; else a 4xx naming the first field that is not."""
    stack = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                _refuse(path, problem)
        elif isinstance(item, float):
            if not math.isfinite(item):
                _refuse(path, "must be a finite number (NaN and Infinity are refused)")
        elif isinstance(item, int) and not isinstance(item, bool):
            if not LONG_MIN <= item <= LONG_MAX:
                _refuse(path, f"must be between {LONG_MIN} and {LONG_MAX}")
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise ValueRefused(400, path, f"nested deeper than {MAX_DEPTH} levels")
            for key in item if isinstance(item, dict) else ():
                problem = text_problem(key) if isinstance(key, str) else None
                if problem:
                    shown = key.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
                    _refuse(_at(path, shown), f"a field name {problem}")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, _at(path, key), depth + 1) for key, child in reversed(list(pairs)))
    return value


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses, while composing and before constructing anything, a document
    nested deeper than MAX_DEPTH, with more than MAX_ALIASES aliases, or larger than MAX_EXPANDED nodes
    once its aliases are expanded (a "billion laughs"), or whose aliases refer to themselves."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node


def _expanded_size(node, sizes: dict[int, int], open_: set[int]) -> int:
    """Nodes under `node` once aliases are expanded; shared nodes are counted once per use, computed once."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise yaml.YAMLError("an alias refers to a node that contains it")
    size = 1
    if isinstance(node, CollectionNode):
        open_.add(key)
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
        for child in children:
            size += _expanded_size(child, sizes, open_)
            if size > MAX_EXPANDED:
                raise yaml.YAMLError(f"more than {MAX_EXPANDED} values once its aliases are expanded")
        open_.discard(key)
    sizes[key] = size
    return size
