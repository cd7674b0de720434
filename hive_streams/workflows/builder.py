"""A small builder for workflow definitions in Python; it produces the same mapping as the YAML form."""
from __future__ import annotations

import copy
from typing import Any

from ..domain.workflow import Workflow
from .definitions import validate_definition


class WorkflowBuilder:
    def __init__(self, name: str, task_budget: float | None = None):
        self.raw: dict[str, Any] = {"name": name, "channels": {}, "nodes": {}, "entry": [], "edges": [],
                                    "routers": [], "joins": []}
        if task_budget is not None:
            self.raw["task_budget"] = task_budget

    def add_channel(self, name: str, type: dict | None = None, reducer: str = "replace", update: str = "multi",
                    scope: str = "global", persistence: str = "checkpointed", **initial) -> "WorkflowBuilder":
        channel = {"type": type or {}, "reducer": reducer, "update": update, "scope": scope,
                   "persistence": persistence}
        if "initial" in initial:
            channel["initial"] = initial["initial"]
        self.raw["channels"][name] = channel
        return self

    def add_node(self, name: str, kind: str, entry: bool = False, **params) -> "WorkflowBuilder":
        self.raw["nodes"][name] = {"kind": kind, **params}
        if entry:
            self.raw["entry"].append(name)
        return self

    def add_edge(self, source: str, target: str, on: str = "ok") -> "WorkflowBuilder":
        self.raw["edges"].append({"from": source, "to": target, "on": on})
        return self

    def add_router(self, source: str, routes: list[tuple[str, str]], default: str | None = None) -> "WorkflowBuilder":
        self.raw["routers"].append({"from": source, "routes": [{"when": w, "to": t} for w, t in routes],
                                    "default": default})
        return self

    def add_join_edge(self, sources: list[str], target: str, name: str | None = None) -> "WorkflowBuilder":
        join = {"from": list(sources), "to": target}
        if name:
            join["name"] = name
        self.raw["joins"].append(join)
        return self

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)

    def build(self) -> Workflow:
        """Validated, with the path of the first wrong field in the DefinitionError."""
        return validate_definition(self.to_dict())
