"""The benchmark suite still works end to end: its smoke mode through the real stack writes a report
with every measurement. Nothing here asserts on how fast anything is."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from hive_streams.settings import REPO_ROOT

SECTIONS = ("## 1. Tasks per second", "## 2. Pipeline", "## 3. Latency", "## 4. Replay", "## 5. Memory",
            "## 6. Restart", "## 7. An idle fabric", "## 8. What a decider's transaction costs",
            "## 9. The audit connector's cost per record")
NUMBER = re.compile(r"\|\s*\d[\d,]*(\.\d+)?\s")


def test_smoke_mode_writes_a_report_with_every_section(kafka_bootstrap, tmp_path):
    env = {**os.environ, "HIVE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = (tmp_path / "REPORT.md").read_text()
    for title in SECTIONS:
        assert title in report, title
        section = report.split(title, 1)[1].split("\n## ", 1)[0]
        assert "Command: `python -m bench --smoke" in section, title
        assert NUMBER.search(section), f"no figures under {title}"
    assert "Celery + Redis" in report
    assert "The broker's CPU a task in each burst of the warm-up, in ms: " in report
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
