"""Writes or checks schemas/*.avsc from the domain's dataclasses, so the two never drift.

    python -m hive_streams.codec.schemagen --check   # exit 1 and list differences
    python -m hive_streams.codec.schemagen --write   # rewrite the .avsc files

A changed schema must stay readable by old data: new fields need defaults (see README).
"""
from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path

from ..domain import agent, callback, commands, events, ledger, model, schedule, task, trigger
from ..domain import execution_records as x
from ..settings import load

NAMESPACE = "hive.v1"
GROUPS = {
    "types": (model.Requirement, model.Capability, model.Hardware, model.NodeOutput, model.NodeSpec, model.Leg,
              ledger.Escrow, trigger.Predicate, trigger.GroupWindow) + x.EXECUTION_TYPES,
    "events": events.TASK_EVENTS + events.AGENT_EVENTS + events.LEDGER_EVENTS + events.ALERT_EVENTS + x.EXECUTION_EVENTS
              + schedule.SCHEDULE_EVENTS + trigger.TRIGGER_EVENTS + callback.CALLBACK_EVENTS,
    "commands": commands.TASK_COMMANDS + commands.AGENT_COMMANDS + commands.LEDGER_COMMANDS + x.EXECUTION_COMMANDS
                + schedule.SCHEDULE_COMMANDS + trigger.TRIGGER_COMMANDS + callback.CALLBACK_COMMANDS,
    "state": (task.TaskState, agent.AgentState, ledger.LedgerState, x.ExecutionState, schedule.ScheduleState,
              trigger.TriggerState, callback.CallbackState),
}
FIELD_DOCS = {
    "at": "epoch milliseconds when it happened", "seq": "position in its aggregate's history, from 1",
    "task_id": "the task aggregate id", "agent_id": "the agent aggregate id",
    "command_id": "unique id of the command, for idempotency", "params_json": "node parameters as a JSON object",
    "output_json": "node output as a JSON value", "deadline_at": "epoch milliseconds, or null for none",
    "attempt": "assignment attempt, from 1", "proficiency": "0 to 1", "not_before": "epoch milliseconds",
    "budget": "most the requester pays per task, or null for no limit", "after": "task ids this task waits for",
    "execution_id": "the execution aggregate id",
}


def avro_type(hint):
    origin = typing.get_origin(hint)
    simple = {str: "string", int: "long", float: "double", bool: "boolean"}
    if hint in simple:
        return simple[hint]
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return ["null", avro_type(inner[0])]
    if origin in (tuple, frozenset):
        return {"type": "array", "items": avro_type(typing.get_args(hint)[0])}
    if origin in (collections.abc.Mapping, dict):
        return {"type": "map", "values": avro_type(typing.get_args(hint)[1])}
    if dataclasses.is_dataclass(hint):
        return f"{NAMESPACE}.{hint.__name__}"
    raise TypeError(f"no Avro type for {hint}")


def _json_default(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _json_default(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, frozenset, list)):
        return [_json_default(v) for v in value]
    return value


def schema_of(cls: type, group: str) -> dict:
    hints = typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        entry = {"name": f.name, "type": avro_type(hints[f.name])}
        if f.default is not dataclasses.MISSING:
            entry["default"] = _json_default(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            entry["default"] = _json_default(f.default_factory())
        if f.name in FIELD_DOCS:
            entry["doc"] = FIELD_DOCS[f.name]
        fields.append(entry)
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(cls.__name__ + "("):
        doc = f"{group.rstrip('s')} {cls.__name__}"
    return {"type": "record", "name": cls.__name__, "namespace": NAMESPACE, "doc": doc.split("\n")[0], "fields": fields}


def expected(schemas_dir: Path) -> dict[Path, str]:
    return {schemas_dir / group / f"{cls.__name__}.avsc": json.dumps(schema_of(cls, group), indent=2) + "\n"
            for group, classes in GROUPS.items() for cls in classes}


def differences(schemas_dir: Path) -> list[str]:
    wanted = expected(schemas_dir)
    out = [f"{p.relative_to(schemas_dir)} differs from the domain" for p, text in wanted.items()
           if not p.exists() or p.read_text() != text]
    present = {p for group in GROUPS for p in (schemas_dir / group).glob("*.avsc")}
    out += [f"{p.relative_to(schemas_dir)} has no domain type" for p in sorted(present - set(wanted))]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    schemas_dir = Path(load().schemas_dir)
    if args.write:
        for path, text in expected(schemas_dir).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                print(f"wrote {path.relative_to(schemas_dir)}")
        return 0
    problems = differences(schemas_dir)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
