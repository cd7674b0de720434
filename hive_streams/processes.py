"""Starting and stopping the fabric's processes: `hive-streams up` and the tests both use it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .settings import REPO_ROOT

PARENT_ENV = "HIVE_EXIT_WITH_PARENT"  # set by Fabric: the pid whose end ends the process too


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None
    ended_on_purpose: bool = False  # stop() or kill() was called: its exit is not a failure

    def start(self) -> "Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, not a shutdown."""
        self.ended_on_purpose = True
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        self.ended_on_purpose = True
        if not self.alive:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Fabric:
    """A set of hive-streams processes sharing one environment."""
    env: dict[str, str]
    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, *args: str, extra_env: dict[str, str] | None = None,
              module: str = "hive_streams.cli") -> Process:
        argv = [sys.executable, "-m", module, *args]
        env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
        proc = Process(name, argv, env, self.log_dir / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def worker(self, name: str = "worker", **extra_env: str) -> Process:
        return self.spawn(name, "worker", extra_env=extra_env)

    def executor(self, agent_id: str, capabilities: str, slots: int = 2, *options: str) -> Process:
        return self.spawn(agent_id, "executor", "--agent-id", agent_id, "--capabilities", capabilities,
                          "--slots", str(slots), *options)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def check_alive(self) -> None:
        """Raises if a process ended that nobody stopped: a non-zero exit or any signal (an OOM kill is -9)."""
        dead = [p for p in self.processes if p.popen and not p.ended_on_purpose and p.popen.poll() not in (None, 0)]
        if dead:
            p = dead[0]
            raise RuntimeError(f"{p.name} {exit_reason(p.popen.returncode)}:\n{p.tail()}")


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with {returncode}"


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def exit_with_parent(grace: float = 15.0, interval: float = 1.0) -> None:
    """In a process a Fabric started: when the process that started it is gone (a killed test run, a killed
    `up`), stop as on SIGTERM, and for good after `grace` seconds. Children of a crashed parent otherwise run on."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
