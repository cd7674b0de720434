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
