"""Run one node of a task: echo, sleep, shell, python and http runners.

Shell and python nodes run in the sandbox (sandbox.py), http nodes under the egress policy
(hive_streams/egress.py); an executor runs only the kinds it offers.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx

from hive_streams.domain.model import NODE_KINDS, NodeSpec
from hive_streams.egress import EgressDenied, EgressError, EgressPolicy
from hive_streams.settings import Settings, load

from .capture import Finished, exit_reason, run_captured
from .errors import NodeError
from .sandbox import Limits, Sandbox, node_dirs
from .templates import input_env, input_files, render, render_shell

OUTPUT_LIMIT = Limits.from_settings(Settings()).output_bytes  # stdout a node keeps by default
ERROR_TAIL = 1000
SLEEP_STEPS = 4
SANDBOXED = ("shell", "python")
CHILD_SOURCE = (Path(__file__).parent / "pychild.py").read_text()

# on_progress(fraction, message); may be a plain function or a coroutine function.
ProgressFn = Callable[[float, str], Awaitable[None] | None]


@dataclass(frozen=True)
class NodeRunner:
    sandbox: Sandbox
    egress: EgressPolicy
    kinds: frozenset[str] = frozenset(NODE_KINDS)

    @classmethod
    def from_settings(cls, settings: Settings, kinds=NODE_KINDS, probe: bool = True) -> "NodeRunner":
        """Raises ConfigError when the kinds need a sandbox that does not work here."""
        sandbox = Sandbox.from_settings(settings)
        if probe and set(SANDBOXED) & set(kinds):
            sandbox.probe()
        return cls(sandbox, EgressPolicy.from_settings(settings), frozenset(kinds) & frozenset(NODE_KINDS))

    async def run(self, node: NodeSpec, inputs: dict[str, object], on_progress: ProgressFn | None = None,
                  workdir_root: Path | None = None) -> object:
        """Run `node` with its dependencies' outputs; return its JSON-able output or raise NodeError."""
        runner = _RUNNERS.get(node.kind)
        if runner is None:
            raise NodeError(f"unknown node kind {node.kind!r}")
        if node.kind not in self.kinds:
            offered = ", ".join(sorted(self.kinds)) or "none"
            raise NodeError(f"this executor does not offer node kind {node.kind!r} (it offers {offered})")
        try:
            params = json.loads(node.params_json)
        except ValueError as exc:
            raise NodeError(f"params_json is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise NodeError("params_json must be a JSON object")
        # A shell command's references become variables (render_shell); everything else is data.
        params = {k: v if (node.kind, k) == ("shell", "command") else render(v, inputs) for k, v in params.items()}
        try:
            # Cancelling the runner on timeout is what kills a sandbox and everything in it.
            output = await asyncio.wait_for(
                runner(self, node, params, inputs, workdir_root, on_progress), node.timeout_seconds
            )
        except TimeoutError:
            raise NodeError(f"timed out after {node.timeout_seconds:g}s") from None
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NodeError(f"output is not JSON-serialisable: {exc}") from None
        return output

    async def confined(self, command: list[str], params: dict, inputs: dict[str, object], env: dict[str, str],
                       workdir_root: Path | None, stdin: bytes | None = None, python: bool = False) -> Finished:
        limits = self.sandbox.maxima.narrowed(params.get("limits"))
        network = params.get("network", False)
        if not isinstance(network, bool):
            raise NodeError("parameter 'network' must be true or false")
        if network and not self.sandbox.network_allowed:
            raise NodeError("this executor gives nodes no network (HIVE_SANDBOX_NETWORK=0)")
        with node_dirs(workdir_root, self.sandbox.new_uid()) as box:
            for name, text in input_files(inputs).items():
                path = Path(box.inputs_dir, name)
                path.write_text(text)
                path.chmod(0o644)
            box = replace(box, network=network, python=python)
            argv = self.sandbox.argv(command, box, limits, self.sandbox.python_binds if python else ())
            return await run_captured(argv, self.sandbox.env(box, env), stdin, limits.output_bytes,
                                      limits.stream_bytes)


@functools.cache
def default_runner() -> NodeRunner:
    """The runner of tests and tools that call run_node without one: this process's settings, every kind."""
    return NodeRunner.from_settings(load(), probe=False)


async def run_node(
    node: NodeSpec,
    inputs: dict[str, object],
    workdir_root: Path | None = None,
    on_progress: ProgressFn | None = None,
    runner: NodeRunner | None = None,
) -> object:
    return await (runner or default_runner()).run(node, inputs, on_progress, workdir_root)


def _require(params: dict, key: str, types: type | tuple[type, ...], what: str) -> Any:
    value = params.get(key)
    if not isinstance(value, types) or isinstance(value, bool):
        raise NodeError(f"parameter {key!r} is required and must be {what}")
    return value


async def _notify(on_progress: ProgressFn | None, fraction: float, message: str) -> None:
    if on_progress is not None:
        result = on_progress(fraction, message)
        if inspect.isawaitable(result):
            await result


async def _echo(runner, node, params, inputs, workdir_root, on_progress):
    for key in ("value", "message"):
        if key in params:
            return params[key]
    return inputs


async def _sleep(runner, node, params, inputs, workdir_root, on_progress):
    seconds = _require(params, "seconds", (int, float), "a number")
    if seconds < 0:
        raise NodeError("parameter 'seconds' must not be negative")
    for step in range(1, SLEEP_STEPS + 1):
        await asyncio.sleep(seconds / SLEEP_STEPS)
        await _notify(on_progress, step / SLEEP_STEPS, f"slept {seconds * step / SLEEP_STEPS:g}s of {seconds:g}s")
    return {"slept": seconds}


async def _shell(runner, node, params, inputs, workdir_root, on_progress):
    command, references = render_shell(_require(params, "command", str, "a string"), inputs)
    env = {**input_env(inputs), **references}
    done = await runner.confined(["/bin/sh", "-c", command], params, inputs, env, workdir_root)
    err_text = _decode(done.stderr)
    if done.returncode != 0:
        tail = err_text[-ERROR_TAIL:].strip()
        raise NodeError(f"command failed with {exit_reason(done.returncode)}" + (f": {tail}" if tail else " (no stderr)"))
    if params.get("json") and not done.stdout_truncated:
        try:
            return json.loads(done.stdout)
        except ValueError:
            pass  # not JSON: fall back to the plain output
    output = {"exit_code": 0, "stdout": _decode(done.stdout), "stderr": err_text}
    if done.stdout_truncated:
        output["stdout_truncated"] = True
    return output


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


async def _python(runner, node, params, inputs, workdir_root, on_progress):
    spec = _require(params, "function", str, "a string")
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise NodeError(f"function must look like 'package.module:function', got {spec!r}")
    request = json.dumps({"function": spec, "params": params, "inputs": inputs}).encode()
    command = [sys.executable, "-s", "-c", CHILD_SOURCE]
    done = await runner.confined(command, params, inputs, {}, workdir_root, stdin=request, python=True)
    if done.stdout_truncated:
        raise NodeError(f"{spec} returned more than the output limit of {len(done.stdout) // 1024} KiB")
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        tail = _decode(done.stderr)[-ERROR_TAIL:].strip()
        raise NodeError(f"{spec} ended with {exit_reason(done.returncode)}" + (f": {tail}" if tail else "")) from None
    if "error" in reply:
        raise NodeError(reply["error"])
    return reply["output"]


async def _http(runner, node, params, inputs, workdir_root, on_progress):
    url = _require(params, "url", str, "a string")
    method = str(params.get("method", "GET")).upper()
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise NodeError("parameter 'headers' must be a mapping")
    try:
        response = await runner.egress.fetch(method, url, json=params.get("json"), headers=headers,
                                             timeout=node.timeout_seconds)
    except (EgressDenied, EgressError) as exc:
        raise NodeError(f"{method} {url}: {exc}" if isinstance(exc, EgressDenied) else str(exc)) from None
    decoded = httpx.Response(response.status, headers=response.headers, content=response.body)
    try:
        body = decoded.json()
    except ValueError:
        body = decoded.text
    if response.status >= 400 and not params.get("allow_error"):
        raise NodeError(f"{method} {url} answered {response.status}: {decoded.text[:ERROR_TAIL]}")
    return {"status": response.status, "body": body}


_RUNNERS = {"echo": _echo, "sleep": _sleep, "shell": _shell, "python": _python, "http": _http}
