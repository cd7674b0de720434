"""Task definitions (parsed JSON/YAML) into a TaskSpec, with the path of any wrong field."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import replace
from typing import Any

from .dag import InvalidGraph, topological_order
from .fields import Field, FieldError
from .model import NODE_KINDS, Hardware, NodeSpec, Requirement, TaskSpec
from .tenancy import qualified, task_tenant

MAX_NODES = 500
MAX_SECONDS = 30 * 24 * 3600  # a node's timeout or sleep
MAX_DEADLINE_SECONDS = 100 * 365 * 24 * 3600  # deadline_at (a long of ms) holds it with room to spare
MAX_BUDGET = 1e15  # in cents it is still a long

REQUIREMENT = Field(("string", "object"), doc="a capability name, or one with the least proficiency needed",
                    properties={"name": Field(("string",), required=True, min_length=1),
                                "proficiency": Field(("number",), 0.0, 1.0, default=0.0)}, closed=True)
HARDWARE = Field(("object",), closed=True, doc="the least hardware the task needs", properties={
    "gpu_type": Field(("string",)), "vram_gb": Field(("number",), 0), "cpu_cores": Field(("integer",), 0),
    "ram_gb": Field(("number",), 0)})
NODE_FIELDS = {
    "id": Field(("string",), required=True, min_length=1, max_length=128),
    "kind": Field(("string",), enum=NODE_KINDS, doc="(`type` is accepted too)"),
    "type": Field(("string",), enum=NODE_KINDS),
    "depends_on": Field(("array",), items=Field(("string",)), default=[]),
    "timeout_seconds": Field(("number",), 0, MAX_SECONDS, exclusive_minimum=True, default=60.0),
}
KIND_PARAMS = {
    "shell": {"command": Field(("string",), required=True)},
    "python": {"function": Field(("string",), required=True)},
    "http": {"url": Field(("string",), required=True)},
    "echo": {},
    "sleep": {"seconds": Field(("number",), 0, MAX_SECONDS, required=True)},
}
NODE = Field(("object",), doc="a node: its kind's parameters sit next to these fields", properties={
    **NODE_FIELDS, **{name: replace(f, required=False, doc=f"{kind} nodes: required")
                      for kind, params in KIND_PARAMS.items() for name, f in params.items()}})
TASK_FIELDS = {
    "id": Field(("string",), min_length=1, max_length=64, doc="an id of your choice: sending it again is idempotent",
                extra={"pattern": "^[A-Za-z0-9._-]+$"}),
    "name": Field(("string",), required=True),
    "nodes": Field(("array",), min_length=1, max_length=MAX_NODES, items=NODE, required=True),
    "priority": Field(("integer",), default=0, doc="higher runs first"),
    "deadline_seconds": Field(("number",), 0, MAX_DEADLINE_SECONDS, exclusive_minimum=True),
    "budget": Field(("number",), 0, MAX_BUDGET, doc="the most the task may cost"),
    "max_retries": Field(("integer",), 0, 20, default=2),
    "requires": Field(("array",), items=REQUIREMENT, default=[]),
    "hardware": HARDWARE,
    "after": Field(("array",), items=Field(("string",), min_length=1), default=[],
                   doc="task ids that must complete first"),
    "retry_backoff_seconds": Field(("number",), 0, 3600, default=1.0),
    "callback_url": Field(("string",), max_length=2048, default="",
                          doc="an absolute http(s) URL each status change of the task is POSTed to, signed"),
}
TASK = Field(("object",), properties=TASK_FIELDS, closed=True, doc="a task definition")


class DefinitionError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _get(obj: dict, key: str, path: str, spec: Field, default=...) -> Any:
    if key not in obj:
        if default is ...:
            raise DefinitionError(_at(path, key), "is required")
        return default
    try:
        return spec.check(obj[key], _at(path, key))
    except FieldError as exc:
        raise DefinitionError(exc.path, exc.message) from None


def _items(raw: list, path: str, spec: Field) -> list:
    for i, item in enumerate(raw):
        try:
            spec.check(item, f"{path}[{i}]")
        except FieldError as exc:
            raise DefinitionError(exc.path, exc.message) from None
    return raw


def _requirements(raw: Any, path: str) -> tuple[Requirement, ...]:
    if not isinstance(raw, list):
        raise DefinitionError(path, "must be a list")
    out = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        if isinstance(item, str):
            out.append(Requirement(item, 0.0))
            continue
        if not isinstance(item, dict):
            raise DefinitionError(p, "must be a capability name or a mapping")
        fields = REQUIREMENT.properties
        prof = float(_get(item, "proficiency", p, fields["proficiency"], 0.0))
        out.append(Requirement(_get(item, "name", p, fields["name"]), prof))
    return tuple(out)


def _hardware(raw: Any) -> Hardware:
    if not isinstance(raw, dict):
        raise DefinitionError("hardware", "must be a mapping")
    for key in raw:
        if key not in HARDWARE.properties:
            raise DefinitionError(f"hardware.{key}",
                                  f"unknown field (expected one of {', '.join(HARDWARE.properties)})")
    values = {key: _get(raw, key, "hardware", spec) for key, spec in HARDWARE.properties.items() if key in raw}
    return Hardware(**values)


def _node(raw: Any, path: str) -> NodeSpec:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "must be a mapping")
    node_id = _get(raw, "id", path, NODE_FIELDS["id"])
    kind = raw.get("kind", raw.get("type"))
    if kind is None:
        raise DefinitionError(f"{path}.kind", "is required")
    if kind not in NODE_KINDS:
        raise DefinitionError(f"{path}.kind", f"must be one of {', '.join(NODE_KINDS)}")
    depends_on = _items(_get(raw, "depends_on", path, NODE_FIELDS["depends_on"], []), f"{path}.depends_on",
                        NODE_FIELDS["depends_on"].items)
    timeout = float(_get(raw, "timeout_seconds", path, NODE_FIELDS["timeout_seconds"], 60.0))
    params = {k: v for k, v in raw.items() if k not in NODE_FIELDS}
    for key, spec in KIND_PARAMS[kind].items():
        _get(params, key, path, spec)
    try:
        params_json = json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(path, f"parameters must be JSON values ({exc})") from None
    return NodeSpec(node_id, kind, params_json, tuple(depends_on), timeout)


def parse_task(raw: Any, now_ms: int) -> TaskSpec:
    if not isinstance(raw, dict):
        raise DefinitionError("$", "a task definition must be a mapping")
    unknown = sorted(set(raw) - set(TASK_FIELDS), key=str)
    if unknown:
        raise DefinitionError(str(unknown[0]), f"unknown field (expected one of {', '.join(sorted(TASK_FIELDS))})")
    f = TASK_FIELDS
    name = _get(raw, "name", "", f["name"])
    nodes_raw = _get(raw, "nodes", "", replace(f["nodes"], min_length=None, max_length=None))
    if not nodes_raw:
        raise DefinitionError("nodes", "must have at least one node")
    if len(nodes_raw) > MAX_NODES:
        raise DefinitionError("nodes", f"must have at most {MAX_NODES} nodes")
    nodes = tuple(_node(n, f"nodes[{i}]") for i, n in enumerate(nodes_raw))
    priority = _get(raw, "priority", "", f["priority"], 0)
    budget = _get(raw, "budget", "", f["budget"], None)
    max_retries = _get(raw, "max_retries", "", f["max_retries"], 2)
    deadline_at = None
    if "deadline_seconds" in raw:
        deadline_at = now_ms + int(_get(raw, "deadline_seconds", "", f["deadline_seconds"]) * 1000)
    requires = _requirements(raw.get("requires", []), "requires")
    backoff = float(_get(raw, "retry_backoff_seconds", "", f["retry_backoff_seconds"], 1.0))
    after = _get(raw, "after", "", f["after"], [])
    for i, task_id in enumerate(after):
        if not isinstance(task_id, str) or not task_id:
            raise DefinitionError(f"after[{i}]", "must be a task id")
    callback_url = _get(raw, "callback_url", "", f["callback_url"], "")
    if callback_url:
        check_callback_url(callback_url, "callback_url")
    budget = None if budget is None else float(budget) + 0.0  # -0.0 becomes 0.0: one budget, one spelling
    spec = TaskSpec(name, nodes, priority, deadline_at, budget, max_retries,
                    requires, _hardware(raw.get("hardware", {})), tuple(after), backoff, callback_url)
    try:
        topological_order(nodes)
    except InvalidGraph as exc:
        raise DefinitionError("nodes", str(exc)) from None
    return spec


def check_callback_url(url: str, path: str) -> None:
    """An absolute http(s) URL with a host; where it may go is the egress policy's to say, at delivery."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if scheme not in ("http", "https") or not host or len(url) > 2048 or any(ch.isspace() for ch in url):
        raise DefinitionError(path, "must be an absolute http or https URL with a host")


_TASK_ID = re.compile(r"[\w.-]{1,64}")  # \w: what str.isalnum() accepts, and "_"


def requested_id(raw: Any) -> str | None:
    """The task id the submitter chose (idempotent resubmission), if any."""
    if not isinstance(raw, dict) or "id" not in raw:
        return None
    task_id = raw["id"]
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise DefinitionError("id", "must be 1 to 64 letters, digits, '-', '_' or '.'")
    return task_id


def in_tenant(spec: TaskSpec, tenant: str) -> TaskSpec:
    """The spec with its `after` ids resolved within `tenant`: a task waits only for its own tenant's tasks."""
    after = []
    for i, ref in enumerate(spec.after):
        task_id = qualified(tenant, ref)
        if task_tenant(task_id) != tenant:
            raise DefinitionError(f"after[{i}]", f"{ref!r} is not a task of tenant {tenant!r}")
        after.append(task_id)
    return dataclasses.replace(spec, after=tuple(after))


def definition_digest(definition: Any) -> str:
    """Equal for the same definition sent again (JSON or YAML, any key order): what makes a repeat of a
    task id idempotent rather than a conflict."""
    if isinstance(definition, TaskSpec):
        definition = dataclasses.asdict(definition)
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
