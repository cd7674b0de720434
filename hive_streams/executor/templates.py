"""`{{ nodes.<id>.output }}` references: values in data, variable references in shell commands.

In a shell command a reference never becomes the value's text: it becomes a quoted reference to
an environment variable that holds the value (`"$HIVE_INPUT_X"`, or `${HIVE_INPUT_X}` inside
double quotes, or `'"$HIVE_INPUT_X"'` inside single quotes), so an upstream output is only data.
"""
from __future__ import annotations

import json
import re
from typing import Any

from .errors import NodeError

# {{ nodes.<id>.output }} or {{ nodes.<id>.output.<key> }}
REF = re.compile(r"\{\{\s*(nodes\.([^\s{}]+?)\.output(?:\.([^\s{}.]+))?)\s*\}\}")
ENV_VALUE_MAX = 64 * 1024  # below the kernel's 128 KiB for one environment string
ENV_TOTAL_MAX = 1024 * 1024


def render(value: Any, inputs: dict[str, object]) -> Any:
    """Replace references with the values' text in every string inside `value` (dicts and lists included)."""
    if isinstance(value, str):
        return REF.sub(lambda m: as_text(_lookup(m, inputs)), value)
    if isinstance(value, dict):
        return {k: render(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, inputs) for v in value]
    return value


def render_shell(command: str, inputs: dict[str, object]) -> tuple[str, dict[str, str]]:
    """The command with each reference replaced by a quoted variable, and those variables' values."""
    out: list[str] = []
    env: dict[str, str] = {}
    quoting = _Quoting()
    pos = 0
    for match in REF.finditer(command):
        quoting.scan(command[pos:match.start()])
        _, node_id, key = match.groups()
        name = var_name(node_id, key)
        text = as_text(_lookup(match, inputs))
        if env.setdefault(name, text) != text:
            raise NodeError(f"references {match.group(1)!r} and another both map to ${name}; rename a node")
        if len(text) > ENV_VALUE_MAX or "\0" in text:
            raise NodeError(f"{match.group(1)!r} is too large or binary for an environment variable; "
                            f"read it from $HIVE_INPUTS_DIR/{var_name(node_id, None)} instead")
        out += [command[pos:match.start()], quoting.reference(name)]
        pos = match.end()
    out.append(command[pos:])
    return "".join(out), env


def var_name(node_id: str, key: str | None) -> str:
    name = "HIVE_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", node_id).upper()
    return name if key is None else name + "__" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def input_env(inputs: dict[str, object]) -> dict[str, str]:
    """HIVE_INPUTS (all, as JSON) and HIVE_INPUT_<ID> (each), those that fit in an environment."""
    env = {"HIVE_INPUTS": json.dumps(inputs)}
    env.update({var_name(dep, None): as_text(output) for dep, output in inputs.items()})
    fitting, total = {}, 0
    for name, text in env.items():
        if len(text) <= ENV_VALUE_MAX and "\0" not in text and total + len(text) <= ENV_TOTAL_MAX:
            fitting[name] = text
            total += len(text)
    return fitting


def input_files(inputs: dict[str, object]) -> dict[str, str]:
    """The same values as files for $HIVE_INPUTS_DIR, whatever their size: inputs.json and HIVE_INPUT_<ID>."""
    return {"inputs.json": json.dumps(inputs), **{var_name(dep, None): as_text(out) for dep, out in inputs.items()}}


def _lookup(match: re.Match, inputs: dict[str, object]) -> object:
    ref, node_id, key = match.groups()
    if node_id not in inputs:
        raise NodeError(f"unknown reference {ref!r}: no output from a dependency named {node_id!r}")
    value = inputs[node_id]
    if key is not None:
        if not isinstance(value, dict) or key not in value:
            raise NodeError(f"unknown reference {ref!r}: the output of {node_id!r} has no key {key!r}")
        value = value[key]
    return value


class _Quoting:
    """Where a POSIX shell would be at a point in the text: plain, '…', "…", $(…), (…) or `…`."""

    def __init__(self):
        self.stack = [""]

    def reference(self, name: str) -> str:
        top = self.stack[-1]
        if top == "'":
            return f"'\"${name}\"'"  # close, quote the variable, reopen
        if top == '"':
            return "${" + name + "}"
        return f'"${name}"'

    def scan(self, text: str) -> None:
        stack = self.stack
        i = 0
        while i < len(text):
            ch, top = text[i], stack[-1]
            if top == "'":
                if ch == "'":
                    stack.pop()
            elif ch == "\\":
                i += 1  # the next character is literal
            elif top == '"' and ch == '"':
                stack.pop()
            elif text.startswith("$(", i):
                stack.append("$(")
                i += 1
            elif ch == "`":
                stack.pop() if top == "`" else stack.append("`")
            elif top != '"' and ch in "'\"":
                stack.append(ch)
            elif top != '"' and ch == "(":
                stack.append("(")
            elif top in ("$(", "(") and ch == ")":
                stack.pop()
            i += 1
