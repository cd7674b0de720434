"""Workflow definitions (parsed JSON/YAML) into a Workflow, with the path of any wrong field. Pure.

A workflow declares typed channels (its state), nodes (each runs as one task), entry nodes, static
edges (`on: ok` or `on: error`), routers (conditions over channel values choosing the next node)
and join edges (the target runs once every source has fired since the join last fired). Checking
channel types against JSON Schema and compiling router conditions need libraries: the shell does
that (`hive_streams.workflows.definitions`); this module checks the structure.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .definition import DefinitionError, _node, _requirements
from .model import NodeSpec, Requirement
from .reducers import REDUCERS, default_initial

SCOPES = ("global", "task_local")
UPDATES = ("single", "multi")
PERSISTENCE = ("checkpointed", "untracked")
WORKFLOW_FIELDS = {"name", "channels", "nodes", "entry", "edges", "routers", "joins", "task_budget"}
CHANNEL_FIELDS = {"type", "scope", "reducer", "update", "initial", "persistence"}
NODE_EXTRA = {"requires": list, "budget": (int, float), "max_retries": int}
MAX_NODES = 200


def _typed(obj: dict, key: str, path: str, types, default=...):
    """obj[key] if it is of `types` (a bool is not a number here), its default when absent, else a field error."""
    where = f"{path}.{key}" if path else key
    if key not in obj:
        if default is ...:
            raise DefinitionError(where, "is required")
        return default
    value = obj[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise DefinitionError(where, f"must be {' or '.join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)}")
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "a mapping", list: "a list",
               bool: "true or false"}


@dataclass(frozen=True)
class Channel:
    name: str
    type_json: str = "{}"
    scope: str = "global"
    reducer: str = "replace"
    update: str = "multi"
    initial: Any = None
    persistence: str = "checkpointed"

    @property
    def schema(self) -> dict:
        return json.loads(self.type_json)

    @property
    def carried(self) -> bool:
        """Kept from one step to the next in the log."""
        return self.scope == "global" and self.persistence == "checkpointed"


@dataclass(frozen=True)
class Node:
    spec: NodeSpec
    requires: tuple[Requirement, ...] = ()
    budget: float | None = None
    max_retries: int = 2


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    on: str = "ok"


@dataclass(frozen=True)
class Route:
    when: str  # a JMESPath expression over the channel values; truthy means take this route
    target: str


@dataclass(frozen=True)
class Router:
    source: str
    routes: tuple[Route, ...]
    default: str | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(r.target for r in self.routes) + ((self.default,) if self.default else ())


@dataclass(frozen=True)
class Join:
    name: str
    sources: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class Workflow:
    name: str
    channels: tuple[Channel, ...]
    nodes: tuple[Node, ...]
    entry: tuple[str, ...]
    edges: tuple[Edge, ...] = ()
    routers: tuple[Router, ...] = ()
    joins: tuple[Join, ...] = ()
    task_budget: float | None = None

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.spec.id == name), None)


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not all(ch.isalnum() or ch in "-_" for ch in value):
        raise DefinitionError(path, "must be 1 to 64 letters, digits, '-' or '_'")
    return value


def _unknown(raw: dict, known, path: str) -> None:
    for key in raw:
        if key not in known:
            where = f"{path}.{key}" if path else key
            raise DefinitionError(where, f"unknown field (expected one of {', '.join(sorted(known))})")


def _choice(raw: dict, key: str, path: str, choices: tuple[str, ...]) -> str:
    value = _typed(raw, key, path, str, choices[0])
    if value not in choices:
        raise DefinitionError(f"{path}.{key}", f"must be one of {', '.join(choices)}")
    return value


def _channel(name: str, raw: Any, path: str) -> Channel:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "must be a mapping")
    _unknown(raw, CHANNEL_FIELDS, path)
    schema = _typed(raw, "type", path, (dict, bool), {})
    reducer = _typed(raw, "reducer", path, str, "replace")
    if reducer not in REDUCERS:
        raise DefinitionError(f"{path}.reducer", f"must be one of {', '.join(REDUCERS)}")
    initial = raw["initial"] if "initial" in raw else default_initial(reducer)
    return Channel(name, json.dumps(schema, sort_keys=True), _choice(raw, "scope", path, SCOPES), reducer,
                   _choice(raw, "update", path, ("multi", "single")), initial,
                   _choice(raw, "persistence", path, PERSISTENCE))


def _workflow_node(name: str, raw: Any, path: str) -> Node:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "must be a mapping")
    extra = {k: raw[k] for k in NODE_EXTRA if k in raw}
    for key, types in NODE_EXTRA.items():
        if key in extra:
            _typed(extra, key, path, types)
    if "depends_on" in raw:
        raise DefinitionError(f"{path}.depends_on", "is not used in workflows: connect nodes with edges")
    spec = _node({**{k: v for k, v in raw.items() if k not in NODE_EXTRA}, "id": name}, path)
    budget = float(extra["budget"]) if "budget" in extra else None
    if budget is not None and budget < 0:
        raise DefinitionError(f"{path}.budget", "must not be negative")
    retries = extra.get("max_retries", 2)
    if not 0 <= retries <= 10:
        raise DefinitionError(f"{path}.max_retries", "must be between 0 and 10")
    return Node(spec, _requirements(extra.get("requires", []), f"{path}.requires"), budget, retries)


def _ref(value: Any, path: str, nodes: set[str]) -> str:
    if not isinstance(value, str):
        raise DefinitionError(path, "must be a node name")
    if value not in nodes:
        raise DefinitionError(path, f"{value!r} is not a node of this workflow")
    return value


def _list(raw: dict, key: str) -> list:
    value = _typed(raw, key, "", list, [])
    return value


def _edges(raw: dict, nodes: set[str]) -> tuple[Edge, ...]:
    out = []
    for i, item in enumerate(_list(raw, "edges")):
        path = f"edges[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError(path, "must be a mapping")
        item = {("on" if key is True else key): value for key, value in item.items()}  # YAML 1.1 reads `on` as true
        _unknown(item, {"from", "to", "on"}, path)
        out.append(Edge(_ref(item.get("from"), f"{path}.from", nodes), _ref(item.get("to"), f"{path}.to", nodes),
                        _choice(item, "on", path, ("ok", "error"))))
    return tuple(out)


def _routers(raw: dict, nodes: set[str]) -> tuple[Router, ...]:
    out, seen = [], set()
    for i, item in enumerate(_list(raw, "routers")):
        path = f"routers[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError(path, "must be a mapping")
        _unknown(item, {"from", "routes", "default"}, path)
        source = _ref(item.get("from"), f"{path}.from", nodes)
        if source in seen:
            raise DefinitionError(f"{path}.from", f"node {source!r} has a router already")
        seen.add(source)
        routes = []
        for j, route in enumerate(_typed(item, "routes", path, list)):
            rpath = f"{path}.routes[{j}]"
            if not isinstance(route, dict):
                raise DefinitionError(rpath, "must be a mapping")
            _unknown(route, {"when", "to"}, rpath)
            when = _typed(route, "when", rpath, str)
            if not when.strip():
                raise DefinitionError(f"{rpath}.when", "must not be empty")
            routes.append(Route(when, _ref(route.get("to"), f"{rpath}.to", nodes)))
        default = _ref(item["default"], f"{path}.default", nodes) if item.get("default") is not None else None
        if not routes and default is None:
            raise DefinitionError(f"{path}.routes", "needs at least one route or a default")
        out.append(Router(source, tuple(routes), default))
    return tuple(out)


def _joins(raw: dict, nodes: set[str]) -> tuple[Join, ...]:
    out = []
    for i, item in enumerate(_list(raw, "joins")):
        path = f"joins[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError(path, "must be a mapping")
        _unknown(item, {"from", "to", "name"}, path)
        sources = _typed(item, "from", path, list)
        if len(sources) < 1:
            raise DefinitionError(f"{path}.from", "needs at least one node")
        refs = tuple(dict.fromkeys(_ref(s, f"{path}.from[{j}]", nodes) for j, s in enumerate(sources)))
        target = _ref(item.get("to"), f"{path}.to", nodes)
        name = _name(item.get("name", f"join{i}"), f"{path}.name")
        if name in {j.name for j in out}:
            raise DefinitionError(f"{path}.name", f"{name!r} is used by another join")
        out.append(Join(name, refs, target))
    return tuple(out)


def parse_workflow(raw: Any) -> Workflow:
    if not isinstance(raw, dict):
        raise DefinitionError("$", "a workflow must be a mapping")
    _unknown(raw, WORKFLOW_FIELDS, "")
    name = _name(raw.get("name"), "name")
    channels_raw = _typed(raw, "channels", "", dict, {})
    channels = tuple(_channel(_name(k, f"channels.{k}"), v, f"channels.{k}") for k, v in channels_raw.items())
    nodes_raw = _typed(raw, "nodes", "", dict)
    if not nodes_raw:
        raise DefinitionError("nodes", "needs at least one node")
    if len(nodes_raw) > MAX_NODES:
        raise DefinitionError("nodes", f"at most {MAX_NODES} nodes")
    nodes = tuple(_workflow_node(_name(k, f"nodes.{k}"), v, f"nodes.{k}") for k, v in nodes_raw.items())
    names = {n.spec.id for n in nodes}
    entry_raw = _typed(raw, "entry", "", (list, str))
    entry_raw = [entry_raw] if isinstance(entry_raw, str) else entry_raw
    if not entry_raw:
        raise DefinitionError("entry", "needs at least one node")
    entry = tuple(_ref(e, f"entry[{i}]", names) for i, e in enumerate(entry_raw))
    budget = _typed(raw, "task_budget", "", (int, float), None)
    if budget is not None and budget < 0:
        raise DefinitionError("task_budget", "must not be negative")
    return Workflow(name, channels, nodes, entry, _edges(raw, names), _routers(raw, names), _joins(raw, names),
                    float(budget) if budget is not None else None)


def canonical(raw: Any) -> str:
    """The definition's JSON as it is stored and carried by its executions."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=256)
def parsed(definition_json: str) -> Workflow:
    """The workflow an execution pinned (its definition was validated when it was registered)."""
    return parse_workflow(json.loads(definition_json))
