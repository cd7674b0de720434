"""Local Apache Kafka (KRaft, one combined broker + controller on 127.0.0.1) assembled from Maven Central.

It always runs with authentication and authorisation: clients log in with SASL/SCRAM as one of
the roles in `kafka/access.py` (their users are added when the storage is formatted, their
passwords written to `credentials.json` next to the data, mode 600), and the ACLs of
`kafka/acls.py` are granted for the configured topic prefix on every start.
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
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")  # both, so HIVE_KAFKA_SASL_MECHANISM may pick either
SLF4J_BINDING = {"org/slf4j/impl/StaticLoggerBinder.class", "META-INF/services/org.slf4j.spi.SLF4JServiceProvider"}


def _dir(s) -> Path:
    return Path(s.home) / "kafka"


def _log(s) -> Path:
    return _dir(s) / "logs" / "broker.log"


def _pid_file(s) -> Path:
    return _dir(s) / "kafka.pid"


def _bootstrap(s) -> str:
    return f"127.0.0.1:{s.kafka_port}"  # our broker, whatever HIVE_KAFKA_BOOTSTRAP says


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


def _pid(s) -> int | None:
    # our pid, still alive and still our Kafka JVM (guards against pid reuse)
    try:
        pid = int(_pid_file(s).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(_dir(s) / "server.properties").encode() in cmdline else None


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
    if not _port_busy(s.kafka_port):  # skip the client (and its error logs) while nothing listens
        return False
    try:
        meta = _run(_probe_once, access(s, "admin"), timeout)
    except Exception:
        return False
    return any(b.get("node_id") == 1 for b in meta.get("brokers", []))


def _wait_ready(s, timeout: float, alive) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ready(s, min(3.0, max(0.5, deadline - time.monotonic()))):
            return
        if not alive():
            raise InfraError(f"Kafka exited during startup; last lines of {_log(s)}:\n{_tail(_log(s))}")
        time.sleep(0.25)
    raise InfraError(f"Kafka not ready on {_bootstrap(s)} after {timeout:.0f}s; last lines of {_log(s)}:\n{_tail(_log(s))}")


@contextlib.contextmanager
def _locked(s):
    # serialises up/down across processes (CLI, test sessions) sharing one home
    _dir(s).mkdir(parents=True, exist_ok=True)
    with open(_dir(s) / "launcher.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def up(s=None, timeout: float = 60) -> str:
    s = s or settings_mod.load()
    with _locked(s):
        bootstrap = _up(s, timeout)
        grant(s)
        return bootstrap


def _up(s, timeout: float) -> str:
    if _pid(s) is not None:  # already ours: ready now, or still starting
        if not _credentials(s).exists():
            raise InfraError(f"the broker running from {_dir(s)} was started without SASL/SCRAM users: stop it "
                             f"(`hive-streams kafka down`), move {_dir(s) / 'data'} away and start it again")
        _wait_ready(s, timeout, lambda: _pid(s) is not None)
        return _bootstrap(s)
    for port in (s.kafka_port, s.kafka_port + 1):
        if _port_busy(port):
            raise InfraError(f"port {port} is taken by another process; set HIVE_KAFKA_PORT")
    libs = ensure_jars(s)
    home = _dir(s)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    log_flags = [f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}", f"-Dkafka.logs.dir={home / 'logs'}"]
    formatted = (home / "data" / "meta.properties").exists()
    if formatted and not _credentials(s).exists():
        raise InfraError(f"the broker data in {home / 'data'} was formatted without users (before SASL/SCRAM and "
                         f"ACLs), and its users can only be added by formatting: stop it, move that directory "
                         f"away and run `hive-streams kafka up` again")
    users = _users(s) if _credentials(s).exists() else access_mod.write_credentials(_credentials(s), s.kafka_mechanism)
    admin = users["admin"]
    _write_private(props, Template((HERE / "server.properties").read_text()).substitute(
        port=s.kafka_port, controller_port=s.kafka_port + 1, data_dir=home / "data",
        admin_user=admin["username"], admin_password=admin["password"]))
    if not formatted:
        scram = [arg for entry in users.values() for mechanism in SCRAM_MECHANISMS
                 for arg in ("--add-scram", f"{mechanism}=[name={entry['username']},password={entry['password']}]")]
        fmt = subprocess.run(_java(libs, "kafka.tools.StorageTool", "format", "-t", _cluster_id(s), "-c", str(props),
                                   "--ignore-formatted", *scram, jvm=log_flags), capture_output=True, text=True)
        if fmt.returncode != 0:
            raise InfraError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
    log = _log(s)
    if log.exists():
        log.replace(log.with_suffix(".log.1"))
    cmd = _java(libs, "kafka.Kafka", str(props), jvm=[*JVM_FLAGS, *log_flags])
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=home, start_new_session=True)
    _pid_file(s).write_text(f"{proc.pid}\n")
    try:  # poll our child: right after a vfork+exec its /proc cmdline can still be empty
        _wait_ready(s, timeout, lambda: proc.poll() is None)
    except BaseException:
        _stop(proc.pid)
        _pid_file(s).unlink(missing_ok=True)
        raise
    return _bootstrap(s)


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
    s = s or settings_mod.load()
    with _locked(s):
        pid = _pid(s)
        if pid is not None:
            _stop(pid, timeout)
        _pid_file(s).unlink(missing_ok=True)


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
    pid = _pid(s)
    return {"running": pid is not None, "pid": pid, "ready": pid is not None and _ready(s),
            "bootstrap": _bootstrap(s), "version": s.kafka_version, "home": str(_dir(s)), "log": str(_log(s))}


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
