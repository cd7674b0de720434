"""check_alive: a process nobody stopped that exits non-zero or by any signal is a failure."""
from __future__ import annotations

import os
import sys

import pytest

from hive_streams.processes import Fabric, Process


def fabric_running(tmp_path, code: str) -> tuple[Fabric, Process]:
    fabric = Fabric({}, tmp_path)
    proc = Process("p", [sys.executable, "-c", code], dict(os.environ), tmp_path / "p.log").start()
    fabric.processes.append(proc)
    proc.popen.wait(10)
    return fabric, proc


@pytest.mark.parametrize("code, reason", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "was killed by SIGTERM"),
    ("raise SystemExit(3)", "exited with 3"),
])
def test_an_unexpected_end_is_reported(tmp_path, code, reason):
    fabric, _ = fabric_running(tmp_path, code)
    with pytest.raises(RuntimeError, match=reason):
        fabric.check_alive()


def test_a_clean_exit_or_a_kill_the_test_asked_for_is_not(tmp_path):
    fabric, _ = fabric_running(tmp_path, "pass")
    fabric.check_alive()
    sleeper = Process("s", [sys.executable, "-c", "import time; time.sleep(30)"], dict(os.environ),
                      tmp_path / "s.log").start()
    fabric.processes.append(sleeper)
    sleeper.kill()
    fabric.check_alive()


def test_a_process_ends_when_the_one_that_started_it_is_killed(tmp_path):
    """A killed test run or `up` must not leave its worker, API or executors running (for hours, on the
    shared machine). The child sleeps ten minutes unless it notices."""
    import signal
    import subprocess
    import time
    pid_file = tmp_path / "child.pid"
    parent = f"""
import os, pathlib
from hive_streams.processes import Fabric
fabric = Fabric({{}}, pathlib.Path({str(tmp_path)!r}))
child = fabric.spawn("sleeper", module="tests.sleeper")
pathlib.Path({str(pid_file)!r}).write_text(str(child.popen.pid))
os.kill(os.getpid(), 9)  # the parent dies without stopping anything
"""
    subprocess.run([sys.executable, "-c", parent], timeout=60)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().split()[2] == "Z":  # ended, waiting for init to reap it
                return
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    pytest.fail(f"the child outlived its parent by 30 s:\n{(tmp_path / 'sleeper.log').read_text()[-2000:]}")
