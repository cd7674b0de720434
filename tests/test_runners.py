import asyncio
import dataclasses
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hive_streams.exceptions import HiveError
from hive_streams.executor.errors import NodeError
from hive_streams.executor.runners import default_runner, run_node
from hive_streams.domain.model import NodeSpec

from .procs import sleeper, wait_none


def node(kind, timeout=10.0, node_id="n", **params):
    return NodeSpec(node_id, kind, json.dumps(params), (), timeout)


# Functions for the python kind, loaded by "module:function".
def add(params, inputs):
    return params["a"] + inputs.get("dep", 0)


async def async_greet(params, inputs):
    await asyncio.sleep(0)
    return {"hello": params["name"]}


def boom(params, inputs):
    raise ValueError("bad thing")


async def slow(params, inputs):
    await asyncio.sleep(5)


def not_json(params, inputs):
    return {1, 2}


# --- echo and templating ---------------------------------------------------

async def test_echo_value_message_and_inputs():
    assert await run_node(node("echo", value={"x": [1, 2]}), {}) == {"x": [1, 2]}
    assert await run_node(node("echo", message="hi"), {}) == "hi"
    assert await run_node(node("echo"), {"a": 1}) == {"a": 1}


async def test_templating_strings_json_and_keys():
    inputs = {"a": "text", "b": {"k": 7, "s": "str"}, "my-node": [1]}
    echo = node("echo", value={
        "plain": "got {{ nodes.a.output }}",
        "json": "{{nodes.b.output}}",
        "key": ["k={{ nodes.b.output.k }}", "s={{ nodes.b.output.s }}"],
        "dash": "{{ nodes.my-node.output }}",
    })
    assert await run_node(echo, inputs) == {
        "plain": "got text", "json": '{"k": 7, "s": "str"}', "key": ["k=7", "s=str"], "dash": "[1]",
    }


async def test_templating_unknown_references():
    with pytest.raises(NodeError, match="nodes.zzz.output"):
        await run_node(node("echo", value="{{ nodes.zzz.output }}"), {"a": 1})
    with pytest.raises(NodeError, match="no key 'nope'"):
        await run_node(node("echo", value="{{ nodes.a.output.nope }}"), {"a": {"k": 1}})
    with pytest.raises(NodeError, match="no key"):
        await run_node(node("echo", value="{{ nodes.a.output.k }}"), {"a": "not a dict"})


async def test_bad_node_definitions():
    assert issubclass(NodeError, HiveError)
    with pytest.raises(NodeError, match="unknown node kind"):
        await run_node(NodeSpec("n", "teleport"), {})
    with pytest.raises(NodeError, match="JSON object"):
        await run_node(NodeSpec("n", "echo", "[1]"), {})
    with pytest.raises(NodeError, match="'command' is required"):
        await run_node(node("shell"), {})


# --- sleep -------------------------------------------------------------------

async def test_sleep_reports_progress():
    seen = []

    async def on_progress(fraction, message):
        seen.append((fraction, message))

    assert await run_node(node("sleep", seconds=0.05), {}, on_progress=on_progress) == {"slept": 0.05}
    assert [f for f, _ in seen] == [0.25, 0.5, 0.75, 1.0]
    assert await run_node(node("sleep", seconds=0), {}, on_progress=lambda f, m: None) == {"slept": 0}


async def test_sleep_failures():
    with pytest.raises(NodeError, match="timed out after 0.1s"):
        await run_node(node("sleep", timeout=0.1, seconds=5), {})
    with pytest.raises(NodeError, match="'seconds'"):
        await run_node(node("sleep", seconds="soon"), {})


# --- shell -------------------------------------------------------------------

async def test_shell_success_and_env(tmp_path):
    inputs = {"my-node": {"v": 1}, "raw": "abc"}
    out = await run_node(
        node("shell", command='echo "$HIVE_INPUT_MY_NODE $HIVE_INPUT_RAW"; echo "$HIVE_INPUTS"; echo err >&2'),
        inputs, workdir_root=tmp_path,
    )
    lines = out["stdout"].splitlines()
    assert out["exit_code"] == 0 and out["stderr"] == "err\n"
    assert lines[0] == '{"v": 1} abc'
    assert json.loads(lines[1]) == inputs


async def test_shell_fresh_workdir_deleted_and_stdin_closed(tmp_path):
    out = await run_node(node("shell", command="pwd; ls -A | wc -l; cat"), {}, workdir_root=tmp_path)
    workdir, count = out["stdout"].split()
    assert Path(workdir).parent == tmp_path and count == "0"
    assert not Path(workdir).exists()


async def test_shell_json_output_and_truncation():
    assert await run_node(node("shell", command="echo '{\"n\": 3}'", json=True), {}) == {"n": 3}
    plain = await run_node(node("shell", command="echo not json", json=True), {})
    assert plain["stdout"] == "not json\n"
    mib = 1024 * 1024
    big = await run_node(node("shell", command=f"head -c {mib + 5000} /dev/zero | tr '\\0' a", limits={"output_mb": 1}), {})
    assert len(big["stdout"]) == mib and big["stdout_truncated"] is True


async def test_shell_non_zero_exit():
    with pytest.raises(NodeError, match="(?s)exit code 3: first.*last words"):
        await run_node(node("shell", command="echo first >&2; echo last words >&2; exit 3"), {})


async def test_shell_timeout_kills_the_process_group():
    # The node has its own pid namespace and no view of the test's files: find its sleep on the host.
    seconds = sleeper()
    async with asyncio.timeout(5):  # without the kill, `wait` would hang for 30s
        with pytest.raises(NodeError, match="timed out after 0.5s"):
            await run_node(node("shell", timeout=0.5, command=f"sleep {seconds} & wait"), {})
    assert await wait_none(seconds)


async def test_shell_background_stragglers_are_killed():
    seconds = sleeper()
    await run_node(node("shell", command=f"sleep {seconds} >/dev/null 2>&1 &"), {})
    assert await wait_none(seconds)


# --- python ------------------------------------------------------------------

async def test_python_sync_and_async():
    assert await run_node(node("python", function=f"{__name__}:add", a=2), {"dep": 40}) == 42
    greet = node("python", function=f"{__name__}:async_greet", name="{{ nodes.d.output }}")
    assert await run_node(greet, {"d": "bee"}) == {"hello": "bee"}


async def test_python_failures():
    with pytest.raises(NodeError, match="ValueError: bad thing"):
        await run_node(node("python", function=f"{__name__}:boom"), {})
    with pytest.raises(NodeError, match="timed out after 0.1s"):
        await run_node(node("python", timeout=0.1, function=f"{__name__}:slow"), {})
    with pytest.raises(NodeError, match="cannot load no_such_module_xyz:f: ModuleNotFoundError"):
        await run_node(node("python", function="no_such_module_xyz:f"), {})
    with pytest.raises(NodeError, match="cannot load .*AttributeError"):
        await run_node(node("python", function=f"{__name__}:missing"), {})
    with pytest.raises(NodeError, match="module:function"):
        await run_node(node("python", function="nocolon"), {})
    with pytest.raises(NodeError, match="not JSON-serialisable"):
        await run_node(node("python", function=f"{__name__}:not_json"), {})


# --- http --------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/json":
            self._send(200, b'{"ok": true}', "application/json")
        elif self.path == "/text":
            self._send(200, b"hello", "text/plain")
        elif self.path == "/slow":
            time.sleep(1)
            self._send(200, b"late", "text/plain")
        else:
            self._send(500, b"it broke", "text/plain")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {"got": body, "token": self.headers.get("X-Token")}
        self._send(201, json.dumps(reply).encode(), "application/json")

    def _send(self, status, body, content_type):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def allowing(url):
    """The default runner with the egress policy opened to exactly this local server."""
    runner = default_runner()
    return dataclasses.replace(runner, egress=runner.egress.allowing(url.removeprefix("http://")))


async def test_http_success(server):
    runner = allowing(server)
    assert await run_node(node("http", url=f"{server}/json"), {}, runner=runner) == {"status": 200, "body": {"ok": True}}
    assert await run_node(node("http", url=f"{server}/text"), {}, runner=runner) == {"status": 200, "body": "hello"}
    post = node("http", method="post", url=f"{server}/echo", json={"x": "{{ nodes.a.output }}"},
                headers={"X-Token": "t0k"})
    assert await run_node(post, {"a": "A"}, runner=runner) == {"status": 201, "body": {"got": {"x": "A"}, "token": "t0k"}}


async def test_http_failures(server):
    runner = allowing(server)
    with pytest.raises(NodeError, match="answered 500: it broke"):
        await run_node(node("http", url=f"{server}/broken"), {}, runner=runner)
    allowed = node("http", url=f"{server}/broken", allow_error=True)
    assert await run_node(allowed, {}, runner=runner) == {"status": 500, "body": "it broke"}
    with pytest.raises(NodeError, match="timed out|Timeout"):
        await run_node(node("http", timeout=0.2, url=f"{server}/slow"), {}, runner=runner)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NodeError, match="failed: ConnectError"):
        await run_node(node("http", url=f"http://127.0.0.1:{port}/"), {}, runner=allowing(f"127.0.0.1:{port}"))
