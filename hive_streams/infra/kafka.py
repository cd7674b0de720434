"""Local Apache Kafka (KRaft on 127.0.0.1) assembled from Maven Central: one combined broker + controller,
or a cluster of `--brokers N` such nodes (three for fault tests), each its own JVM, data and log.

It always runs with authentication and authorisation: clients log in with SASL/SCRAM as one of
the roles in `kafka/access.py` (their users are added when the storage is formatted, their
passwords written to `credentials.json` next to the data, mode 600), and the ACLs of
`kafka/acls.py` are granted for the configured topic prefix on every start. A cluster keeps one
directory per node under HIVE_HOME/kafka (node-1, node-2, ...); a single broker keeps its files
in HIVE_HOME/kafka itself.
"""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from hive_streams import settings as settings_mod
from hive_streams.exceptions import InfraError
from hive_streams.kafka import access as access_mod

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hive-streams"
JVM_FLAGS = [
    "-Xms256m", "-Xmx768m",
    # defaults of bin/kafka-run-class.sh
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
]
CLUSTER_HEAP = ["-Xms128m", "-Xmx512m"]  # each of a cluster's JVMs
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")  # both, so HIVE_KAFKA_SASL_MECHANISM may pick either
SLF4J_BINDING = {"org/slf4j/impl/StaticLoggerBinder.class", "META-INF/services/org.slf4j.spi.SLF4JServiceProvider"}


def _dir(s) -> Path:
    return Path(s.home) / "kafka"


def brokers(s) -> int:
    """How many nodes the home's cluster has: as it was formatted, else HIVE_KAFKA_BROKERS (default 1)."""
    recorded = _dir(s) / "brokers"
    if recorded.exists():
        return int(recorded.read_text())
    if (_dir(s) / "data" / "meta.properties").exists():  # formatted before the count was recorded
        return 1
    return s.kafka_brokers or 1


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker + controller) of the home's cluster."""
    id: int
    count: int
    base_port: int
    home: Path

    @property
    def dir(self) -> Path:
        return self.home if self.count == 1 else self.home / f"node-{self.id}"

    @property
    def port(self) -> int:
        return self.base_port + self.id - 1

    @property
    def controller_port(self) -> int:
        return self.base_port + self.count + self.id - 1

    @property
    def props(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log(self) -> Path:
        return self.dir / "logs" / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def pid(self) -> int | None:
        # our pid, still alive and still this node's Kafka JVM (guards against pid reuse)
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.props).encode() in cmdline else None


def nodes(s, count: int | None = None) -> list[Node]:
    count = count or brokers(s)
    return [Node(i, count, s.kafka_port, _dir(s)) for i in range(1, count + 1)]


def node(s, node_id: int) -> Node:
    return nodes(s)[node_id - 1]


def _log(s) -> Path:
    return nodes(s)[0].log


def _bootstrap(s) -> str:
    return ",".join(f"127.0.0.1:{n.port}" for n in nodes(s))  # ours, whatever HIVE_KAFKA_BOOTSTRAP says


def _credentials(s) -> Path:
    return _dir(s) / "credentials.json"


def credentials_file(s=None) -> Path:
    """The launched broker's users and passwords, for HIVE_KAFKA_CREDENTIALS of processes with another home."""
    return _credentials(s or settings_mod.load())


def _users(s) -> dict[str, dict[str, str]]:
    return access_mod.read_credentials(_credentials(s))


def access(s, role: str) -> access_mod.KafkaAccess:
    """A connection to the launched broker as `role`, with the credentials it was formatted with."""
    entry = _users(s)[role]
    return access_mod.KafkaAccess(_bootstrap(s), entry["username"], entry["password"], s.kafka_mechanism,
                                  "SASL_PLAINTEXT")


def usernames(s) -> dict[str, str]:
    return {role: entry["username"] for role, entry in _users(s).items()}


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no log at {path})"


def _has_slf4j_binding(jar: Path) -> bool:
    with zipfile.ZipFile(jar) as z:
        return bool(SLF4J_BINDING & set(z.namelist()))


def ensure_jars(s) -> Path:
    libs = CACHE / f"kafka-{s.kafka_version}" / "libs"
    marker = libs.parent / "complete"
    if marker.exists():
        return libs
    if not shutil.which("mvn"):
        raise InfraError("mvn not found: Maven is needed once to fetch the Kafka jars")
    shutil.rmtree(libs, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-Dkafka.version={s.kafka_version}", f"-DoutputDirectory={libs}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not list(libs.glob(f"kafka_2.13-{s.kafka_version}.jar")):
        raise InfraError(f"fetching Kafka {s.kafka_version} jars failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    # an SLF4J 1.x binding or 2.x provider; none means silent logs, two means a random pick
    bindings = [p.name for p in libs.glob("*.jar") if _has_slf4j_binding(p)]
    if len(bindings) != 1:
        raise InfraError(f"expected exactly one SLF4J binding in {libs}, found {bindings}")
    marker.write_text(" ".join(cmd) + "\n")
    return libs


def _java(libs: Path, *args: str, jvm: list[str] = ()) -> list[str]:
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else "java"
    return [str(java), *jvm, "-cp", f"{libs}/*", *args]


def _cluster_id(s) -> str:
    path = _dir(s) / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    cid = "-"
    while cid.startswith("-"):  # a leading dash reads as a CLI option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    path.write_text(cid + "\n")
    return cid


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _probe_once(kafka: access_mod.KafkaAccess, timeout: float) -> dict:
    from hive_streams.kafka.clients import admin as admin_client

    admin = admin_client(kafka, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            return await admin.describe_cluster()
    finally:
        await admin.close()


def _run(coro_fn, *args):
    # synchronous from anywhere: a fresh loop here, or in a worker thread if a loop already runs
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn(*args))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result()


def _ready(s, timeout: float = 3.0) -> bool:
    """Every node answers as a broker in the cluster's metadata."""
    if not all(_port_busy(n.port) for n in nodes(s)):  # skip the client (and its error logs) while a node is not listening
        return False
    try:
        meta = _run(_probe_once, access(s, "admin"), timeout)
    except Exception:
        return False
    return {n.id for n in nodes(s)} <= {b.get("node_id") for b in meta.get("brokers", [])}


def _logs_tail(s) -> str:
    return "\n".join(f"last lines of {n.log}:\n{_tail(n.log)}" for n in nodes(s))


def _wait_ready(s, timeout: float, alive) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ready(s, min(3.0, max(0.5, deadline - time.monotonic()))):
            return
        if not alive():
            raise InfraError(f"Kafka exited during startup; {_logs_tail(s)}")
        time.sleep(0.25)
    raise InfraError(f"Kafka not ready on {_bootstrap(s)} after {timeout:.0f}s; {_logs_tail(s)}")


@contextlib.contextmanager
def _locked(s):
    # serialises up/down across processes (CLI, test sessions) sharing one home
    _dir(s).mkdir(parents=True, exist_ok=True)
    with open(_dir(s) / "launcher.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def up(s=None, timeout: float | None = None) -> str:
    """Starts every node of the home's cluster that is not running (all of them, or one that was killed);
    waits up to `timeout` seconds (default 60 per node: on a busy machine three JVMs start slowly)."""
    s = s or settings_mod.load()
    timeout = timeout or 60 * max(1, s.kafka_brokers or brokers(s))
    with _locked(s):
        bootstrap = _up(s, timeout)
        grant(s)
        return bootstrap


def _count(s) -> int:
    count = brokers(s)
    if s.kafka_brokers and s.kafka_brokers != count:
        raise InfraError(f"the Kafka cluster in {_dir(s)} has {count} broker(s), not {s.kafka_brokers}: use another "
                         f"HIVE_HOME, or stop it and move that directory away")
    return count


def _up(s, timeout: float) -> str:
    count = _count(s)
    cluster = nodes(s, count)
    running = [n for n in cluster if n.pid() is not None]
    if running and not _credentials(s).exists():
        raise InfraError(f"the broker running from {_dir(s)} was started without SASL/SCRAM users: stop it "
                         f"(`hive-streams kafka down`), move {running[0].data} away and start it again")
    stopped = [n for n in cluster if n not in running]
    if not stopped:  # already ours: ready now, or still starting
        _wait_ready(s, timeout, lambda: all(n.pid() is not None for n in cluster))
        return _bootstrap(s)
    for port in (p for n in stopped for p in (n.port, n.controller_port)):
        if _port_busy(port):
            raise InfraError(f"port {port} is taken by another process; set HIVE_KAFKA_PORT")
    libs = ensure_jars(s)
    formatted = [n for n in cluster if (n.data / "meta.properties").exists()]
    if formatted and not _credentials(s).exists():
        raise InfraError(f"the broker data in {formatted[0].data} was formatted without users (before SASL/SCRAM "
                         f"and ACLs), and its users can only be added by formatting: stop it, move that directory "
                         f"away and run `hive-streams kafka up` again")
    _dir(s).mkdir(parents=True, exist_ok=True)
    (_dir(s) / "brokers").write_text(f"{count}\n")
    users = _users(s) if _credentials(s).exists() else access_mod.write_credentials(_credentials(s), s.kafka_mechanism)
    procs = {}
    try:
        for n in stopped:
            procs[n.id] = _start_node(s, libs, n, users)
        # a cluster's nodes are ready together: a controller quorum needs a majority of them
        _wait_ready(s, timeout, lambda: all(p.poll() is None for p in procs.values()))
    except BaseException:
        for n in stopped:
            if n.id in procs:
                _stop(procs[n.id].pid)
                n.pid_file.unlink(missing_ok=True)
        raise
    return _bootstrap(s)


def _start_node(s, libs: Path, n: Node, users: dict) -> subprocess.Popen:
    from hive_streams.kafka.admin import replication_for

    (n.dir / "logs").mkdir(parents=True, exist_ok=True)
    log_flags = [f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}", f"-Dkafka.logs.dir={n.dir / 'logs'}"]
    admin = users["admin"]
    replication, min_insync = replication_for(n.count, s.replication_factor, s.min_insync_replicas)
    voters = ",".join(f"{m.id}@127.0.0.1:{m.controller_port}" for m in nodes(s, n.count))
    _write_private(n.props, Template((HERE / "server.properties").read_text()).substitute(
        node_id=n.id, voters=voters, port=n.port, controller_port=n.controller_port, data_dir=n.data,
        replication=replication, min_insync=min_insync,
        admin_user=admin["username"], admin_password=admin["password"]))
    if not (n.data / "meta.properties").exists():
        scram = [arg for entry in users.values() for mechanism in SCRAM_MECHANISMS
                 for arg in ("--add-scram", f"{mechanism}=[name={entry['username']},password={entry['password']}]")]
        fmt = subprocess.run(_java(libs, "kafka.tools.StorageTool", "format", "-t", _cluster_id(s), "-c", str(n.props),
                                   "--ignore-formatted", *scram, jvm=log_flags), capture_output=True, text=True)
        if fmt.returncode != 0:
            raise InfraError(f"formatting Kafka storage of node {n.id} failed:\n{fmt.stdout}{fmt.stderr}")
    if n.log.exists():
        n.log.replace(n.log.with_suffix(".log.1"))
    heap = JVM_FLAGS if n.count == 1 else CLUSTER_HEAP + JVM_FLAGS[2:]
    cmd = _java(libs, "kafka.Kafka", str(n.props), jvm=[*heap, *log_flags])
    with open(n.log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=n.dir, start_new_session=True)
    n.pid_file.write_text(f"{proc.pid}\n")
    return proc


def grant(s, topics=None, worker_id: str | None = None) -> None:
    """The roles' ACLs on a topic prefix (the configured one by default), as the admin; existing ones stay."""
    from hive_streams.kafka import acls
    from hive_streams.topics import Topics

    wanted = acls.grants(topics or Topics.from_settings(s), worker_id or s.worker_id)
    _run(acls.apply, access(s, "admin"), wanted, usernames(s))


def revoke(s, topics, worker_id: str) -> None:
    from hive_streams.kafka import acls

    _run(acls.revoke, access(s, "admin"), acls.grants(topics, worker_id), usernames(s))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC


def down(s=None, timeout: float = 30) -> None:
    """Stops every node: all told at once, so each shuts down while the controller quorum still stands."""
    s = s or settings_mod.load()
    with _locked(s):
        cluster = nodes(s)
        pids = [pid for pid in (n.pid() for n in cluster) if pid is not None]
        with concurrent.futures.ThreadPoolExecutor(max(1, len(pids))) as pool:
            list(pool.map(lambda pid: _stop(pid, timeout), pids))
        for n in cluster:
            n.pid_file.unlink(missing_ok=True)


def kill(s, node_id: int) -> None:
    """SIGKILL one node: a crash, for fault tests (`up` brings it back)."""
    n = node(s, node_id)
    pid = n.pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)


def _stop(pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)  # controlled shutdown
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap if it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status(s=None) -> dict:
    s = s or settings_mod.load()
    cluster = nodes(s)
    pids = [n.pid() for n in cluster]
    running = all(pid is not None for pid in pids)
    return {"running": running, "brokers": len(cluster), "pid": pids[0] if len(cluster) == 1 else pids,
            "ready": running and _ready(s), "bootstrap": _bootstrap(s), "version": s.kafka_version,
            "home": str(_dir(s)), "log": str(cluster[0].log) if len(cluster) == 1 else [str(n.log) for n in cluster]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in ("up", "down", "status"):
        print("usage: python -m hive_streams.infra.kafka up|down|status", file=sys.stderr)
        return 2
    s = settings_mod.load()
    try:
        if argv[0] == "up":
            print(up(s))
        elif argv[0] == "down":
            down(s)
        else:
            for key, value in status(s).items():
                print(f"{key}: {value}")
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
