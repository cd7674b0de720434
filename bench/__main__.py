"""`python -m bench [SECTION ...] [--smoke | --full]`: run the benchmarks against the real broker and
PostgreSQL, then write results.json, REPORT.md and a PNG chart into bench/results/ (or --out)."""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

from hive_streams import settings as settings_mod
from hive_streams.infra import kafka, postgres

from . import deps, machine
from .common import REPO, SIZES, Context, loadavg

SECTIONS = ("tasks", "pipeline", "latency", "replay", "memory", "restart", "idle", "transactions", "connector", "profile")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"any of {', '.join(SECTIONS)} (default: all; the smoke mode leaves out the profile)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_const", dest="mode", const="smoke", help="tiny sizes, one run: proves it works")
    size.add_argument("--full", action="store_const", dest="mode", const="full",
                      help="the issue's sizes: 1,000,000 replayed events, 100,000 tasks in state, a restart with 1,000,000 "
                           "events in history")
    parser.add_argument("--repeats", type=int, help="runs of each figure (default: 3, smoke: 1)")
    parser.add_argument("--rate", type=float, help="latency: tasks/s to submit at (default: half of the tasks figure)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    return args


def command_line(args: argparse.Namespace) -> str:
    flags = [f"--{args.mode}"] if args.mode != "default" else []
    flags += [f"--repeats {args.repeats}"] if args.repeats else []
    return " ".join(["python -m bench", *flags])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # SIGTERM unwinds like Ctrl-C, so each run's stack still deletes its topics, database and processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    args.mode = args.mode or "default"
    sections = args.sections or [s for s in SECTIONS if not (args.mode == "smoke" and s == "profile")]
    deps.ensure_python_packages()
    from . import report  # matplotlib may have just been installed
    modules = {name: importlib.import_module(f"bench.{name}") for name in sections}
    s = settings_mod.load()
    bootstrap = s.kafka_bootstrap or kafka.up(s)
    pg_server = postgres.up(s)
    if "tasks" in sections:
        deps.ensure_redis_server()
    sizes = {**SIZES[args.mode], **({"repeats": args.repeats} if args.repeats else {})}
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    if results.get("meta", {}).get("mode") != args.mode:
        results = {}
    work = s.home_path / "bench" / uuid.uuid4().hex[:8]
    ctx = Context(args.mode, bootstrap, pg_server, work, args.out, sizes, command_line(args), results)
    results["meta"] = {"mode": args.mode, "repeats": sizes["repeats"], "sizes": sizes, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                       "machine": machine.describe(pg_server, s.kafka_version)}
    if "latency" in sections and args.rate is None and "tasks" not in sections and "tasks" not in results:
        sys.exit("bench: latency needs --rate, or the tasks section in this run or in results.json")
    for section in sections:
        started = time.monotonic()
        print(f"bench: {section} ...", flush=True)
        try:
            run = modules[section].run
            results[section] = run(ctx, args.rate) if section == "latency" else run(ctx)
            results[section]["taken"] = {"at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_at_end": loadavg(),
                                         "code": results["meta"]["machine"]["versions"]["hive-streams"]}
        except Exception:
            print(f"bench: {section} failed; process logs are in {work}", file=sys.stderr)
            raise
        results["meta"]["load_at_end"] = loadavg()
        results_file.write_text(json.dumps(results, indent=1))
        report.write(results, args.out, with_chart=False)  # the chart once, at the end: drawing it takes seconds
        print(f"bench: {section} done in {time.monotonic() - started:.0f}s", flush=True)
    report.write(results, args.out)
    shutil.rmtree(work, ignore_errors=True)
    print(f"bench: wrote {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
