"""Launcher of a project-owned PostgreSQL cluster, built from Debian's packages.

    python -m hive_streams.infra.postgres up|down|status
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import importlib
import json
import os
import pwd
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from hive_streams import settings as settings_mod
from hive_streams.exceptions import InfraError

PG_USER = "postgres"  # OS user the server runs as when we are root (postgres refuses to run as root)


def ensure_installed() -> Path:
    """Return the bin dir of the newest installed major version, installing `postgresql` if needed."""
    if not _bin_dirs():
        if os.geteuid() != 0:
            raise InfraError("PostgreSQL is not installed and we are not root: apt-get install postgresql")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", "postgresql"]
        r = subprocess.run(install, env=env, capture_output=True, text=True)
        if r.returncode != 0:  # most often a stale package list: no candidate
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            r = subprocess.run(install, env=env, capture_output=True, text=True)
        if r.returncode != 0 or not _bin_dirs():
            raise InfraError(f"apt-get install postgresql failed: {r.stderr.strip()[-2000:]}")
    return _bin_dirs()[-1]


def _bin_dirs() -> list[Path]:
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    return sorted(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


def _run_as() -> str:
    return PG_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def _cmd(args: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *args] if os.geteuid() == 0 else args


def _ensure_user() -> None:
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql",
                        "--shell", "/usr/sbin/nologin", PG_USER], check=True)


def cluster_dir(s: settings_mod.Settings) -> Path:
    # Rule: $HIVE_HOME/postgres if the server's user can reach $HIVE_HOME, else /var/tmp/hive-streams-pg-<sha1(home)>.
    home = Path(s.home).resolve()
    if os.geteuid() != 0:
        return home / "postgres"
    home.mkdir(parents=True, exist_ok=True)
    if subprocess.run(_cmd(["test", "-x", str(home)]), cwd="/").returncode == 0:
        return home / "postgres"
    return Path("/var/tmp") / f"hive-streams-pg-{hashlib.sha1(str(home).encode()).hexdigest()[:12]}"


def _prepare(s: settings_mod.Settings) -> Path:
    root = cluster_dir(s)
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _ensure_user()
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        if root.parent != Path(s.home).resolve():  # say where the cluster went
            (Path(s.home) / "postgres.location").write_text(f"{root}\n")
    return root


def _pg(bin_dir: Path, root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(_cmd([str(bin_dir / args[0]), *args[1:]]), cwd=root, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise InfraError(f"{args[0]} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def _socket_dir(root: Path) -> Path:
    return root if len(str(root)) < 80 else Path("/tmp")  # unix socket paths are limited to 107 bytes


@contextmanager
def _lock(root: Path):
    with open(root.parent / f".{root.name}.lock", "w") as f:  # serialises concurrent `up`/`down` calls
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def server_url(s: settings_mod.Settings, database: str = "hive") -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{s.postgres_port}/{database}"


def _psycopg(timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:  # psycopg may still be being installed by pip
        try:
            importlib.invalidate_caches()
            return importlib.import_module("psycopg")
        except ImportError as e:
            if time.monotonic() > deadline:
                raise InfraError("psycopg is not importable: pip install 'psycopg[binary]'") from e
            time.sleep(1)


def _conninfo(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url
    u = make_url(url).set(drivername="postgresql")
    return (u.set(database=database) if database else u).render_as_string(hide_password=False)


def up(s: settings_mod.Settings | None = None, timeout: float = 30) -> str:
    s = s or settings_mod.load()
    bin_dir = ensure_installed()
    root = _prepare(s)
    data = root / "data"
    with _lock(root):
        if not (data / "PG_VERSION").exists():
            _pg(bin_dir, root, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                "--no-locale", "--no-sync")
        if _pg(bin_dir, root, "pg_ctl", "status", "-D", str(data), check=False).returncode != 0:
            # fsync/full_page_writes off: a throwaway dev/test cluster, a power cut may corrupt it.
            opts = (f"-p {s.postgres_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{_socket_dir(root)}'"
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            r = _pg(bin_dir, root, "pg_ctl", "start", "-D", str(data), "-l", str(root / "postgres.log"),
                    "-w", "-t", str(int(timeout)), "-o", opts, check=False)
            if r.returncode != 0:
                log = (root / "postgres.log").read_text(errors="replace")[-2000:] if (root / "postgres.log").exists() else ""
                raise InfraError(f"pg_ctl start failed: {r.stdout.strip()} {r.stderr.strip()}\n{log}")
        _wait_and_create(s, timeout)
    return server_url(s)


def _wait_and_create(s: settings_mod.Settings, timeout: float) -> None:
    psycopg = _psycopg()
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            create_database(server_url(s, "postgres"), "hive")
            return
        except psycopg.OperationalError as e:
            last = e
            time.sleep(0.2)
    raise InfraError(f"PostgreSQL on port {s.postgres_port} did not accept connections: {last}")


def down(s: settings_mod.Settings | None = None) -> None:
    s = s or settings_mod.load()
    root, bin_dir = cluster_dir(s), ensure_installed()
    if not (root / "data" / "PG_VERSION").exists():
        return
    with _lock(root):
        if _pg(bin_dir, root, "pg_ctl", "status", "-D", str(root / "data"), check=False).returncode == 0:
            _pg(bin_dir, root, "pg_ctl", "stop", "-D", str(root / "data"), "-m", "fast", "-w")


def status(s: settings_mod.Settings | None = None) -> dict:
    s = s or settings_mod.load()
    root = cluster_dir(s)
    pid_file = root / "data" / "postmaster.pid"
    running = bool(_bin_dirs()) and (root / "data").exists() and _pg(
        _bin_dirs()[-1], root, "pg_ctl", "status", "-D", str(root / "data"), check=False).returncode == 0
    return {"running": running, "url": server_url(s), "port": s.postgres_port, "cluster_dir": str(root),
            "initialised": (root / "data" / "PG_VERSION").exists(), "run_as": _run_as(),
            "pid": int(pid_file.read_text().split()[0]) if running and pid_file.exists() else None,
            "log": str(root / "postgres.log")}


def create_database(url_of_server: str, name: str) -> str:
    """Create database `name` (if missing) on the server of `url_of_server`; return its SQLAlchemy URL."""
    psycopg = _psycopg()
    from psycopg import sql
    from sqlalchemy.engine import make_url
    with psycopg.connect(_conninfo(url_of_server, "postgres"), autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:  # lost a race with another session
                pass
    return make_url(url_of_server).set(database=name).render_as_string(hide_password=False)


def drop_database(url_of_server: str, name: str) -> None:
    psycopg = _psycopg()
    from psycopg import sql
    with psycopg.connect(_conninfo(url_of_server, "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv: list[str] | None = None) -> int:
    cmd = (argv if argv is not None else sys.argv[1:]) or ["status"]
    try:
        if cmd[0] == "up":
            print(up())
        elif cmd[0] == "down":
            down()
        elif cmd[0] == "status":
            print(json.dumps(status(), indent=2))
        else:
            print("usage: python -m hive_streams.infra.postgres up|down|status", file=sys.stderr)
            return 2
    except InfraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
