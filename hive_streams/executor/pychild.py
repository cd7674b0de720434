"""Inside a python node's sandbox (its source is passed with `python -c`, so it imports nothing of ours).

Reads {"function", "params", "inputs"} as JSON on stdin, calls the function, and writes
{"output": ...} or {"error": "..."} to the stdout it started with; the function's own prints
go to stderr.
"""
import asyncio
import importlib
import inspect
import json
import os
import sys


def main() -> None:
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    request = json.load(sys.stdin)
    spec = request["function"]
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:
        result = {"error": f"cannot load {spec}: {type(exc).__name__}: {exc}"}
    else:
        result = call(func, spec, request["params"], request["inputs"])
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        text = json.dumps({"error": f"output is not JSON-serialisable: {exc}"})
    reply.write(text)
    reply.flush()


def call(func, spec: str, params: dict, inputs: dict) -> dict:
    try:
        if inspect.iscoroutinefunction(func):
            return {"output": asyncio.run(func(params=params, inputs=inputs))}
        return {"output": func(params=params, inputs=inputs)}
    except (Exception, SystemExit) as exc:
        return {"error": f"{spec} raised {type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    main()
