"""Run a task's nodes in dependency order, independent nodes concurrently."""
from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Protocol

from hive_streams.cancelling import cancel_all
from hive_streams.domain.dag import InvalidGraph, ready_nodes, topological_order
from hive_streams.domain.model import NodeSpec

from .errors import NodeError
from .runners import NodeRunner, run_node


class DagReport(Protocol):
    async def started(self, node_id: str) -> None: ...
    async def progress(self, node_id: str, fraction: float, message: str) -> None: ...
    async def completed(self, node_id: str, output: object) -> None: ...
    async def failed(self, node_id: str, error: str) -> None: ...


async def run_dag(
    nodes: tuple[NodeSpec, ...],
    done: dict[str, object],
    report: DagReport,
    workdir_root: Path | None = None,
    runner: NodeRunner | None = None,
) -> dict[str, object]:
    """Run every node not in `done` (whose outputs are reused); return all outputs by node id.

    On the first failure the other running nodes are cancelled, the failure is reported
    and NodeError (with node_id set) is raised. Cancelling run_dag cancels every node,
    which kills their subprocesses.
    """
    try:
        order = topological_order(nodes)
    except InvalidGraph as exc:
        raise NodeError(f"invalid graph: {exc}") from None
    by_id = {n.id: n for n in nodes}
    outputs = {node_id: done[node_id] for node_id in order if node_id in done}
    running: dict[asyncio.Task, str] = {}
    try:
        while len(outputs) < len(order):
            for node_id in ready_nodes(nodes, set(outputs), set(running.values())):
                node = by_id[node_id]
                await report.started(node_id)
                inputs = {dep: outputs[dep] for dep in node.depends_on}
                progress = functools.partial(report.progress, node_id)
                task = asyncio.create_task(run_node(node, inputs, workdir_root, progress, runner), name=f"node:{node_id}")
                running[task] = node_id
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            # Record successes before a failure, so a retry can reuse them.
            failure: tuple[str, BaseException] | None = None
            for task in finished:
                node_id = running.pop(task)
                error = task.exception()
                if error is None:
                    outputs[node_id] = task.result()
                    await report.completed(node_id, outputs[node_id])
                elif failure is None:
                    failure = (node_id, error)
            if failure is not None:
                node_id, error = failure
                message = str(error) if isinstance(error, NodeError) else f"{type(error).__name__}: {error}"
                await _cancel(running)
                await report.failed(node_id, message)
                raise NodeError(f"node {node_id!r} failed: {message}", node_id=node_id) from error
    finally:
        await _cancel(running)
    return outputs


async def _cancel(running: dict[asyncio.Task, str]) -> None:
    """Cancel the tasks and wait until they are gone (their subprocesses killed)."""
    await cancel_all(list(running))
    running.clear()
