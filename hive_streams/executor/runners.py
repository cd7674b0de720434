"""Run one node of a task: echo, sleep, shell, python and http runners, plus templating."""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import os
import re
import signal
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx

from hive_streams.domain.model import NodeSpec

from .errors import NodeError

OUTPUT_LIMIT = 64 * 1024
ERROR_TAIL = 1000
SLEEP_STEPS = 4

# on_progress(fraction, message); may be a plain function or a coroutine function.
ProgressFn = Callable[[float, str], Awaitable[None] | None]

# {{ nodes.<id>.output }} or {{ nodes.<id>.output.<key> }}
_REF = re.compile(r"\{\{\s*(nodes\.([^\s{}]+?)\.output(?:\.([^\s{}.]+))?)\s*\}\}")


async def run_node(
    node: NodeSpec,
    inputs: dict[str, object],
    workdir_root: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> object:
    """Run `node` with its dependencies' outputs; return its JSON-able output or raise NodeError."""
    runner = _RUNNERS.get(node.kind)
    if runner is None:
        raise NodeError(f"unknown node kind {node.kind!r}")
    try:
        params = json.loads(node.params_json)
    except ValueError as exc:
        raise NodeError(f"params_json is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise NodeError("params_json must be a JSON object")
    params = render(params, inputs)
    try:
        # Cancelling the runner on timeout is what kills a shell's process group.
        output = await asyncio.wait_for(
            runner(node, params, inputs, workdir_root, on_progress), node.timeout_seconds
        )
    except TimeoutError:
        raise NodeError(f"timed out after {node.timeout_seconds:g}s") from None
    try:
        json.dumps(output, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NodeError(f"output is not JSON-serialisable: {exc}") from None
    return output


def render(value: Any, inputs: dict[str, object]) -> Any:
    """Replace output references in every string inside `value` (dicts and lists included)."""
    if isinstance(value, str):
        return _REF.sub(lambda m: _resolve(m, inputs), value)
    if isinstance(value, dict):
        return {k: render(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, inputs) for v in value]
    return value


def _resolve(match: re.Match, inputs: dict[str, object]) -> str:
    ref, node_id, key = match.groups()
    if node_id not in inputs:
        raise NodeError(f"unknown reference {ref!r}: no output from a dependency named {node_id!r}")
    value = inputs[node_id]
    if key is not None:
        if not isinstance(value, dict) or key not in value:
            raise NodeError(f"unknown reference {ref!r}: the output of {node_id!r} has no key {key!r}")
        value = value[key]
    return value if isinstance(value, str) else json.dumps(value)


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


async def _echo(node, params, inputs, workdir_root, on_progress):
    for key in ("value", "message"):
        if key in params:
            return params[key]
    return inputs


async def _sleep(node, params, inputs, workdir_root, on_progress):
    seconds = _require(params, "seconds", (int, float), "a number")
    if seconds < 0:
        raise NodeError("parameter 'seconds' must not be negative")
    for step in range(1, SLEEP_STEPS + 1):
        await asyncio.sleep(seconds / SLEEP_STEPS)
        await _notify(on_progress, step / SLEEP_STEPS, f"slept {seconds * step / SLEEP_STEPS:g}s of {seconds:g}s")
    return {"slept": seconds}


async def _shell(node, params, inputs, workdir_root, on_progress):
    # Templated text goes into the command verbatim; $HIVE_INPUT_<ID> is the injection-safe way in.
    command = _require(params, "command", str, "a string")
    env = {**os.environ, "HIVE_INPUTS": json.dumps(inputs)}
    for dep, output in inputs.items():
        env["HIVE_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", dep).upper()] = (
            output if isinstance(output, str) else json.dumps(output)
        )
    with tempfile.TemporaryDirectory(prefix="hive-node-", dir=workdir_root, ignore_cleanup_errors=True) as workdir:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, cwd=workdir, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so one killpg reaches every child
        )
        try:
            stdout, stderr = await proc.communicate()
        finally:
            # On timeout (wait_for cancels us), cancellation or normal exit: nothing it started outlives it.
            _kill_group(proc.pid)
            if proc.returncode is None:
                await proc.wait()
    err_text = _decode(stderr[-OUTPUT_LIMIT:])
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        tail = err_text[-ERROR_TAIL:].strip()
        raise NodeError(f"command failed with {how}" + (f": {tail}" if tail else " (no stderr)"))
    if params.get("json"):
        try:
            return json.loads(stdout)
        except ValueError:
            pass  # not JSON: fall back to the plain output
    return {"exit_code": 0, "stdout": _decode(stdout[:OUTPUT_LIMIT]), "stderr": err_text}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, signal.SIGKILL)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


async def _python(node, params, inputs, workdir_root, on_progress):
    # A sync function runs in a thread; on timeout we stop waiting but cannot stop the thread.
    spec = _require(params, "function", str, "a string")
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise NodeError(f"function must look like 'package.module:function', got {spec!r}")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:
        raise NodeError(f"cannot load {spec}: {type(exc).__name__}: {exc}") from None
    try:
        if inspect.iscoroutinefunction(func):
            return await func(params=params, inputs=inputs)
        return await asyncio.to_thread(func, params=params, inputs=inputs)
    except NodeError:
        raise
    except Exception as exc:
        raise NodeError(f"{spec} raised {type(exc).__name__}: {exc}") from exc


async def _http(node, params, inputs, workdir_root, on_progress):
    url = _require(params, "url", str, "a string")
    method = str(params.get("method", "GET")).upper()
    headers = params.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise NodeError("parameter 'headers' must be a mapping")
    try:
        async with httpx.AsyncClient(timeout=node.timeout_seconds) as client:
            response = await client.request(method, url, json=params.get("json"), headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise NodeError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400 and not params.get("allow_error"):
        raise NodeError(f"{method} {url} answered {response.status_code}: {response.text[:ERROR_TAIL]}")
    return {"status": response.status_code, "body": body}


_RUNNERS = {"echo": _echo, "sleep": _sleep, "shell": _shell, "python": _python, "http": _http}
