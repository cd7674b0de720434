"""7. An idle fabric: CPU of every process (worker, API, connector, two executors, the Kafka broker, PostgreSQL)
with nothing to do, over a window after start-up. A fabric left running on a laptop costs this much."""
from __future__ import annotations

import time

from .common import PROCESSES, Context, CpuMeter, server_pids, summary
from .stack import Stack

SETTLE_S = 15  # start-up (logins, loads, the matcher's catch-up) is over by then; the smoke mode waits less


def idle_run(ctx: Context, servers: dict, settle: float, window: float) -> dict:
    stack = Stack(ctx.bootstrap, ctx.pg_server, ctx.work).start(executors=PROCESSES)
    try:
        time.sleep(settle)
        stack._check()
        meter = CpuMeter({name: stack.pid(name) for name in stack.procs}, servers).start()
        time.sleep(window)
        used = meter.stop()
        used.pop("bench client", None)
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{stack.logs()}") from exc
    finally:
        stack.stop()
    cores = {name: seconds / meter.wall for name, seconds in used.items()}
    return {"cores": cores, "total_cores": sum(cores.values())}


def run(ctx: Context) -> dict:
    servers = server_pids(ctx.bootstrap, ctx.pg_server)
    window = ctx.sizes["idle"]
    settle = SETTLE_S if window >= 10 else window
    runs = [idle_run(ctx, servers, settle, window) for _ in range(ctx.sizes["repeats"])]
    names = list(runs[0]["cores"])
    return {"command": ctx.cmd("idle"), "settle_s": settle, "window_s": window, "runs": runs,
            "total_cores": summary([r["total_cores"] for r in runs]),
            **{f"cores_{name}": summary([r["cores"][name] for r in runs]) for name in names}, "processes": names}
