import asyncio
import json

import pytest

from hive_streams.domain.model import NodeSpec
from hive_streams.executor.dagrun import DagReport, run_dag
from hive_streams.executor.errors import NodeError

from .procs import sleeper, wait_none, wait_started


def node(node_id, kind, depends_on=(), timeout=10.0, **params):
    return NodeSpec(node_id, kind, json.dumps(params), tuple(depends_on), timeout)


class Recorder:
    def __init__(self):
        self.events = []

    async def started(self, node_id):
        self.events.append(("started", node_id))

    async def progress(self, node_id, fraction, message):
        self.events.append(("progress", node_id, fraction))

    async def completed(self, node_id, output):
        self.events.append(("completed", node_id, output))

    async def failed(self, node_id, error):
        self.events.append(("failed", node_id, error))

    def kinds(self, kind):
        return [e[1] for e in self.events if e[0] == kind]


def double(params, inputs):
    return inputs["a"]["n"] * 2


async def test_outputs_flow_to_dependents():
    nodes = (
        node("c", "echo", ["a", "b"], value="result={{ nodes.b.output }} n={{ nodes.a.output.n }}"),
        node("a", "shell", command="echo '{\"n\": 21}'", json=True),
        node("b", "python", ["a"], function=f"{__name__}:double"),
    )
    report: DagReport = Recorder()  # structural: any object with the four async methods
    outputs = await run_dag(nodes, {}, report)
    assert outputs == {"a": {"n": 21}, "b": 42, "c": "result=42 n=21"}
    assert report.kinds("completed") == ["a", "b", "c"]
    assert report.kinds("started") == ["a", "b", "c"]


async def test_independent_nodes_run_concurrently():
    nodes = (node("x", "sleep", seconds=0.3), node("y", "sleep", seconds=0.3), node("z", "echo", ["x", "y"]))
    report = Recorder()
    outputs = await run_dag(nodes, {}, report)
    assert outputs["z"] == {"x": {"slept": 0.3}, "y": {"slept": 0.3}}
    order = [e[:2] for e in report.events if e[0] in ("started", "completed")]
    # Both sleeps start before either completes; the join starts after both.
    assert order[:2] == [("started", "x"), ("started", "y")]
    assert set(order[2:4]) == {("completed", "x"), ("completed", "y")}
    assert order[4:] == [("started", "z"), ("completed", "z")]
    assert {e[1] for e in report.events if e[0] == "progress"} == {"x", "y"}


async def test_done_nodes_are_skipped_and_reused():
    nodes = (
        node("a", "shell", command="exit 1"),  # would fail if it ran again
        node("b", "echo", ["a"], value="{{ nodes.a.output }}-b"),
    )
    report = Recorder()
    outputs = await run_dag(nodes, {"a": "cached"}, report)
    assert outputs == {"a": "cached", "b": "cached-b"}
    assert report.kinds("started") == ["b"]


async def test_failure_cancels_siblings_and_stops_dependents():
    # Nodes share no files and have their own pid namespaces: find the sibling's sleep on the host.
    seconds = sleeper()
    nodes = (
        node("slow", "shell", command=f"sleep {seconds} & wait"),
        node("bad", "shell", command="sleep 0.3; echo nope >&2; exit 4"),
        node("after", "echo", ["bad"]),
    )
    report = Recorder()
    async with asyncio.timeout(5):  # cancelling "slow" must not wait for its 30s sleep
        with pytest.raises(NodeError, match="exit code 4: nope") as info:
            await run_dag(nodes, {}, report)
    assert info.value.node_id == "bad"
    assert report.kinds("failed") == ["bad"]
    assert report.kinds("completed") == []
    assert "after" not in report.kinds("started")
    assert await wait_none(seconds)


async def test_cancelling_run_dag_kills_running_shell():
    seconds = sleeper()
    nodes = (node("long", "shell", command=f"sleep {seconds} & wait"),)
    report = Recorder()
    run = asyncio.create_task(run_dag(nodes, {}, report))
    await wait_started(seconds)
    run.cancel()
    finished, _ = await asyncio.wait({run}, timeout=5)
    assert finished, "run_dag did not stop promptly after cancel"
    assert run.cancelled()
    assert await wait_none(seconds)
    assert report.kinds("completed") == [] and report.kinds("failed") == []


async def test_invalid_graph_is_a_node_error():
    with pytest.raises(NodeError, match="invalid graph: .*unknown node"):
        await run_dag((node("a", "echo", ["ghost"]),), {}, Recorder())
