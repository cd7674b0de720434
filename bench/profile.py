"""Profiles with py-spy of the slowest stage, the worker deciding commands (the pipeline benchmark's
setup), and of the two processes that spend the most CPU per task end to end, the worker and the
audit connector (the tasks benchmark's setup): where their samples fall, by function."""
from __future__ import annotations

import collections
from pathlib import Path

from .common import Context
from .pipeline import pipeline_run
from .tasks import hive_run

IDLE = "EpollSelector.select"
SKIP = ("<module>", "main (hive_streams/cli.py", "cmd_worker", "run_worker")


def function(frame: str) -> str:
    """`name (path:line)` -> `name (path)`: samples of one function add up over its lines."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def collapse(path: Path, top: int = 15) -> dict:
    """Summarises py-spy's raw output (`frame;frame;... count` a line) by own and by total samples."""
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = [function(f) for f in stack.split(";")], int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    ours = [(f, n) for f, n in total.most_common()
            if ("hive_streams/" in f or f.endswith((" (deciders.py)", " (app.py)", " (matcher.py)", " (relays.py)")))
            and not f.startswith(SKIP)]
    pct = lambda n: round(100 * n / samples, 1)
    idle = sum(n for f, n in own.items() if f.startswith(IDLE))
    return {"samples": samples, "idle_pct": pct(idle),
            "own": [(f, pct(n)) for f, n in own.most_common(top)],
            "ours_total": [(f, pct(n)) for f, n in ours[:top]]}


def run(ctx: Context) -> dict:
    raw = ctx.out / "profile-worker.txt"
    result = pipeline_run(ctx, ctx.sizes["pipeline"], profile_to=raw)
    e2e = hive_run(ctx, ctx.sizes["tasks"], profile_to=ctx.out)
    return {"command": ctx.cmd("profile"), "tool": "py-spy record --rate 100 --gil --format raw --pid <pid>",
            "pipeline": {"stage": f"worker deciding {result['commands']:,} SubmitTask commands (section 2's setup)",
                         "rate": f"{result['pipeline_commands_per_s']:.1f} commands/s", "raw_file": raw.name,
                         **collapse(raw)},
            **{f"e2e_{name}": {"stage": f"{name} during {e2e['tasks']:,} tasks end to end (section 1's setup)",
                               "rate": f"{e2e['tasks_per_s']:.1f} tasks/s, {e2e['cpu_ms_per_task'][name]:.1f} ms CPU "
                                       "per task in this process", "raw_file": f"profile-e2e-{name}.txt",
                               **collapse(ctx.out / f"profile-e2e-{name}.txt")}
               for name in ("worker", "connect")}}
