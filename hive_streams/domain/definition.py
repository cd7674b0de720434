"""Task definitions (parsed JSON/YAML) into a TaskSpec, with the path of any wrong field."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from .dag import InvalidGraph, topological_order
from .model import NODE_KINDS, Hardware, NodeSpec, Requirement, TaskSpec
from .tenancy import qualified, task_tenant

MAX_NODES = 500
TASK_FIELDS = {"id", "name", "nodes", "priority", "deadline_seconds", "budget", "max_retries", "requires", "hardware",
               "after", "retry_backoff_seconds", "callback_url"}
HARDWARE_FIELDS = {"gpu_type": str, "vram_gb": (int, float), "cpu_cores": int, "ram_gb": (int, float)}
NODE_FIELDS = {"id", "kind", "type", "depends_on", "timeout_seconds"}
KIND_PARAMS = {
    "shell": {"command": str},
    "python": {"function": str},
    "http": {"url": str},
    "echo": {},
    "sleep": {"seconds": (int, float)},
}


class DefinitionError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _get(obj: dict, key: str, path: str, types, default=..., ) -> Any:
    if key not in obj:
        if default is ...:
            raise DefinitionError(f"{path}.{key}" if path else key, "is required")
        return default
    value = obj[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise DefinitionError(f"{path}.{key}" if path else key, f"must be {_names(types)}")
    if not isinstance(value, types):
        raise DefinitionError(f"{path}.{key}" if path else key, f"must be {_names(types)}")
    return value


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    words = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}
    return " or ".join(dict.fromkeys(words.get(t, t.__name__) for t in types))


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
        prof = float(_get(item, "proficiency", p, (int, float), 0.0))
        if not 0.0 <= prof <= 1.0:
            raise DefinitionError(f"{p}.proficiency", "must be between 0 and 1")
        out.append(Requirement(_get(item, "name", p, str), prof))
    return tuple(out)


def _hardware(raw: Any) -> Hardware:
    if not isinstance(raw, dict):
        raise DefinitionError("hardware", "must be a mapping")
    for key in raw:
        if key not in HARDWARE_FIELDS:
            raise DefinitionError(f"hardware.{key}", f"unknown field (expected one of {', '.join(HARDWARE_FIELDS)})")
    values = {key: _get(raw, key, "hardware", types) for key, types in HARDWARE_FIELDS.items() if key in raw}
    return Hardware(**values)


def _node(raw: Any, path: str) -> NodeSpec:
    if not isinstance(raw, dict):
        raise DefinitionError(path, "must be a mapping")
    node_id = _get(raw, "id", path, str)
    if not node_id or len(node_id) > 128:
        raise DefinitionError(f"{path}.id", "must be 1 to 128 characters")
    kind = raw.get("kind", raw.get("type"))
    if kind is None:
        raise DefinitionError(f"{path}.kind", "is required")
    if kind not in NODE_KINDS:
        raise DefinitionError(f"{path}.kind", f"must be one of {', '.join(NODE_KINDS)}")
    depends_on = _get(raw, "depends_on", path, list, [])
    for i, dep in enumerate(depends_on):
        if not isinstance(dep, str):
            raise DefinitionError(f"{path}.depends_on[{i}]", "must be a string")
    timeout = float(_get(raw, "timeout_seconds", path, (int, float), 60.0))
    if timeout <= 0:
        raise DefinitionError(f"{path}.timeout_seconds", "must be positive")
    params = {k: v for k, v in raw.items() if k not in NODE_FIELDS}
    for key, types in KIND_PARAMS[kind].items():
        _get(params, key, path, types)
    try:
        params_json = json.dumps(params, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(path, f"parameters must be JSON values ({exc})") from None
    return NodeSpec(node_id, kind, params_json, tuple(depends_on), timeout)


def parse_task(raw: Any, now_ms: int) -> TaskSpec:
    if not isinstance(raw, dict):
        raise DefinitionError("$", "a task definition must be a mapping")
    unknown = sorted(set(raw) - TASK_FIELDS, key=str)
    if unknown:
        raise DefinitionError(str(unknown[0]), f"unknown field (expected one of {', '.join(sorted(TASK_FIELDS))})")
    name = _get(raw, "name", "", str)
    nodes_raw = _get(raw, "nodes", "", list)
    if not nodes_raw:
        raise DefinitionError("nodes", "must have at least one node")
    if len(nodes_raw) > MAX_NODES:
        raise DefinitionError("nodes", f"must have at most {MAX_NODES} nodes")
    nodes = tuple(_node(n, f"nodes[{i}]") for i, n in enumerate(nodes_raw))
    priority = _get(raw, "priority", "", int, 0)
    budget = _get(raw, "budget", "", (int, float), None)
    if budget is not None and budget < 0:
        raise DefinitionError("budget", "must not be negative")
    max_retries = _get(raw, "max_retries", "", int, 2)
    if not 0 <= max_retries <= 20:
        raise DefinitionError("max_retries", "must be between 0 and 20")
    deadline_at = None
    if "deadline_seconds" in raw:
        seconds = _get(raw, "deadline_seconds", "", (int, float))
        if seconds <= 0:
            raise DefinitionError("deadline_seconds", "must be positive")
        deadline_at = now_ms + int(seconds * 1000)
    requires = _requirements(raw.get("requires", []), "requires")
    backoff = float(_get(raw, "retry_backoff_seconds", "", (int, float), 1.0))
    if not 0 <= backoff <= 3600:
        raise DefinitionError("retry_backoff_seconds", "must be between 0 and 3600")
    after = _get(raw, "after", "", list, [])
    for i, task_id in enumerate(after):
        if not isinstance(task_id, str) or not task_id:
            raise DefinitionError(f"after[{i}]", "must be a task id")
    callback_url = _get(raw, "callback_url", "", str, "")
    if callback_url:
        check_callback_url(callback_url, "callback_url")
    spec = TaskSpec(name, nodes, priority, deadline_at, None if budget is None else float(budget), max_retries,
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


def requested_id(raw: Any) -> str | None:
    """The task id the submitter chose (idempotent resubmission), if any."""
    if not isinstance(raw, dict) or "id" not in raw:
        return None
    task_id = raw["id"]
    if not isinstance(task_id, str) or not 1 <= len(task_id) <= 64 or not all(ch.isalnum() or ch in "-_." for ch in task_id):
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
