"""The sandbox of shell and python nodes: bubblewrap namespaces, rlimits, a scrubbed environment.

Building the command line is pure (`Sandbox.argv`, `Sandbox.env`); `probe` runs one tiny node
so an executor whose machine cannot sandbox refuses to start.
"""
from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Iterator

from ..exceptions import ConfigError
from ..settings import REPO_ROOT, Settings
from .errors import NodeError

MIB = 1024 * 1024
INPUTS_DIR = "/hive/inputs"
PATH = "/usr/local/bin:/usr/bin:/bin"
UID_RANGE = 1_000_000
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_FILES = ("passwd", "group", "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf", "localtime",
             "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates", "mime.types",
             "protocols", "services")


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int
    memory_mb: int
    processes: int
    file_mb: int
    output_kb: int
    output_mb: int = 100

    @classmethod
    def from_settings(cls, s: Settings) -> "Limits":
        return cls(s.sandbox_cpu_seconds, s.sandbox_memory_mb, s.sandbox_processes, s.sandbox_file_mb,
                   s.sandbox_output_kb, s.sandbox_output_mb)

    def narrowed(self, requested: object) -> "Limits":
        """A node's `limits`, each a positive integer no larger than this executor's maximum."""
        if requested is None:
            return self
        if not isinstance(requested, dict):
            raise NodeError("parameter 'limits' must be a mapping")
        names = [f.name for f in fields(self) if f.name != "output_kb"]  # the inline limit is the executor's
        changes = {}
        for name, value in requested.items():
            if name not in names:
                raise NodeError(f"unknown limit {name!r} (expected one of {', '.join(names)})")
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise NodeError(f"limit {name!r} must be a positive integer")
            if value > getattr(self, name):
                raise NodeError(f"limit {name!r} of {value} is over this executor's maximum of {getattr(self, name)}")
            changes[name] = value
        return replace(self, **changes)

    @property
    def inline_bytes(self) -> int:
        """A node output whose JSON is larger goes to the blob topic."""
        return self.output_kb * 1024

    @property
    def output_bytes(self) -> int:
        """The stdout a node keeps (bounded by what it may write at all)."""
        return min(self.output_mb * MIB, self.stream_bytes)

    @property
    def stream_bytes(self) -> int:
        """Most a node may write to stdout and stderr together before it is killed."""
        return self.file_mb * MIB


@dataclass(frozen=True)
class Box:
    """One node's place on the host: its private dirs and, under root, its own uid."""
    workdir: str
    tmpdir: str
    inputs_dir: str
    network: bool = False
    python: bool = False
    uid: int | None = None


@dataclass(frozen=True)
class Sandbox:
    maxima: Limits
    network_allowed: bool = True
    passthrough_env: tuple[str, ...] = ()
    python_path: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    as_root: bool = False
    uid_base: int = 4_000_000
    system_links: tuple[tuple[str, str], ...] = ()  # (/lib, usr/lib): merged-usr symlinks
    system_dirs: tuple[str, ...] = ()  # top-level system dirs that are real directories
    bwrap: str = "bwrap"

    @classmethod
    def from_settings(cls, s: Settings) -> "Sandbox":
        links, dirs = [], []
        for name in SYSTEM_DIRS:
            path = Path("/", name)
            if path.is_symlink():
                links.append((str(path), os.readlink(path)))
            elif path.is_dir():
                dirs.append(str(path))
        python_path = s.sandbox_pythonpath.split(os.pathsep) if s.sandbox_pythonpath else executor_python_path()
        return cls(
            maxima=Limits.from_settings(s),
            network_allowed=bool(s.sandbox_network),
            passthrough_env=tuple(n.strip() for n in s.sandbox_env.split(",") if n.strip()),
            python_path=tuple(python_path),
            hidden=tuple(dict.fromkeys(str(Path(p).resolve()) for p in (s.home, REPO_ROOT / ".hive"))),
            as_root=os.geteuid() == 0,
            uid_base=s.sandbox_uid_base,
            system_links=tuple(links),
            system_dirs=tuple(dirs),
            bwrap=shutil.which("bwrap") or "bwrap",
        )

    def new_uid(self) -> int | None:
        return self.uid_base + secrets.randbelow(UID_RANGE) if self.as_root else None

    @functools.cached_property
    def python_binds(self) -> tuple[str, ...]:
        """The Python install and import path, outermost first, nothing bound twice."""
        roots = sorted({str(Path(p)) for p in (sys.prefix, sys.base_prefix, *self.python_path)
                        if p and Path(p).is_absolute() and not _too_broad(p)}, key=lambda p: (len(p), p))
        kept: list[str] = []
        for path in roots:
            if not any(_inside(path, outer) for outer in kept):
                kept.append(path)
        return tuple(kept)

    def argv(self, command: list[str], box: Box, limits: Limits, python_binds: tuple[str, ...] = ()) -> list[str]:
        args = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--hostname", "hive-node"]
        if not self.as_root:
            args += ["--unshare-user", "--disable-userns"]
        if not (box.network and self.network_allowed):
            args.append("--unshare-net")
        args += ["--ro-bind", "/usr", "/usr", "--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/hive"]
        for link, target in self.system_links:
            args += ["--symlink", target, link]
        for path in self.system_dirs:
            args += ["--ro-bind", path, path]
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--proc", "/proc", "--dev", "/dev", "--bind", box.tmpdir, "/tmp"]
        read_only = ["/usr", "/proc", "/dev", *self.system_dirs, *python_binds]
        made: set[str] = set()
        for path in python_binds:
            args += _parents(path, read_only, made) + ["--ro-bind", path, path]
        for path in self.hidden:
            if any(_inside(path, outer) for outer in python_binds) and os.path.isdir(path):
                args += ["--tmpfs", path]  # an empty dir over it
        args += _parents(box.workdir, read_only, made)
        args += ["--bind", box.workdir, box.workdir, "--ro-bind", box.inputs_dir, INPUTS_DIR,
                 "--chdir", box.workdir, "--"]
        if box.uid is not None:
            args += ["setpriv", f"--reuid={box.uid}", f"--regid={box.uid}", "--clear-groups", "--inh-caps=-all",
                     "--bounding-set=-all", "--no-new-privs", "--"]
        cpu = limits.cpu_seconds
        args += ["prlimit", f"--cpu={cpu}:{cpu + 1}", f"--as={limits.memory_mb * MIB}", f"--nproc={limits.processes}",
                 f"--fsize={limits.file_mb * MIB}", "--core=0", "--"]
        return args + command

    def env(self, box: Box, extra: dict[str, str], outer: dict[str, str] | None = None) -> dict[str, str]:
        """An allow-list of the executor's variables, a fixed PATH and HOME, and the node's own."""
        outer = os.environ if outer is None else outer
        env = {name: outer[name] for name in self.passthrough_env if name in outer}
        env.update(PATH=PATH, HOME=box.workdir, TMPDIR="/tmp", HIVE_INPUTS_DIR=INPUTS_DIR)
        if box.python:
            env.update(PYTHONPATH=os.pathsep.join(self.python_path), PYTHONNOUSERSITE="1",
                       PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def probe(self, workdir_root: str | None = None) -> None:
        """Run `true` in a sandbox like a node's; raise ConfigError saying why it does not work."""
        for tool in (self.bwrap, "prlimit", *(["setpriv"] if self.as_root else [])):
            if shutil.which(tool) is None:
                hint = " (Debian package bubblewrap)" if "bwrap" in tool else ""
                raise ConfigError(f"the node sandbox needs {tool!r}{hint}, which is not on PATH")
        with node_dirs(workdir_root, self.new_uid()) as box:
            command = [sys.executable, "-c", "pass"]
            argv = self.argv(command, replace(box, python=True), self.maxima, self.python_binds)
            try:
                done = subprocess.run(argv, env=self.env(box, {}), capture_output=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ConfigError(f"the node sandbox does not work on this machine: {exc}") from None
            if done.returncode != 0:
                why = done.stderr.decode(errors="replace").strip()[-500:] or f"exit code {done.returncode}"
                raise ConfigError(f"the node sandbox does not work on this machine: {why}")


@contextlib.contextmanager
def node_dirs(workdir_root: str | Path | None, uid: int | None) -> Iterator[Box]:
    """A fresh work dir (hive-node-*) and, beside it, tmp/ and inputs/ (hive-aux-*); all gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="hive-node-", dir=workdir_root, ignore_cleanup_errors=True) as work, \
            tempfile.TemporaryDirectory(prefix="hive-aux-", dir=workdir_root, ignore_cleanup_errors=True) as aux:
        tmp, inputs = Path(aux, "tmp"), Path(aux, "inputs")
        tmp.mkdir(mode=0o700)
        inputs.mkdir(mode=0o755)
        if uid is not None:
            for path in (work, tmp):
                os.chown(path, uid, uid)
        yield Box(work, str(tmp), str(inputs), uid=uid)


def executor_python_path() -> list[str]:
    return [os.getcwd() if p == "" else p for p in sys.path if p == "" or os.path.isdir(p)]


def _too_broad(path: str) -> bool:
    return Path(path).resolve() in (Path("/"), Path.home().resolve())


def _inside(path: str, outer: str) -> bool:
    return path == outer or path.startswith(outer.rstrip("/") + "/")


def _parents(path: str, read_only: list[str], made: set[str]) -> list[str]:
    """`--dir` (mode 0755) for each ancestor not there yet, so an unprivileged uid can walk to `path`."""
    args = []
    for parent in reversed(Path(path).parents):
        p = str(parent)
        if p == "/" or p in made or any(_inside(p, m) for m in read_only):
            continue
        made.add(p)
        args += ["--perms", "0755", "--dir", p]
    return args
