"""`hive-streams replay`: rebuild and compare with a progress bar, then every difference by key and the rate;
exit 1 on any difference."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

EXIT_SAME, EXIT_DIFFERENT, EXIT_BAD_INPUT = 0, 1, 2
ROLE = "analyst"  # read-only: events and the deciders' and the matcher's snapshots


def add_parsers(sub) -> None:
    p = sub.add_parser("replay", help="fold the event topics into a scratch schema and compare it with the live read "
                                      "models and the deciders' and the matcher's snapshots; exit 1 naming every "
                                      "difference")
    p.add_argument("--until", help="an ISO 8601 time: rebuild the read models as they were then (kept in the "
                                   "scratch schema, compared with nothing)")
    p.add_argument("--keep", action="store_true", help="keep the scratch schema (its name is printed)")
    p.add_argument("--role", default=ROLE, help="the Kafka role to read as")
    p.add_argument("--policy", help="shadow replay of the scheduler instead: the recorded submissions and agents "
                                    "placed by this matching policy in simulated time (recorded, cheapest, idlest, "
                                    "proficient, reputable, weights:NAME=W,..., or a module[:attr])")
    p.add_argument("--chart", default=None, help="where the shadow replay's PNG chart goes "
                                                 "(default shadow-<policy>.png)")


def run(args, settings, console: Console | None = None) -> int:
    from ..api.history import parse_time
    from ..api.errors import RequestError
    from ..exceptions import HiveError
    console = console or Console()
    if args.policy:
        return run_shadow(args, settings, console)
    until = None
    if args.until:
        try:
            until = parse_time(args.until)
        except RequestError as exc:
            console.print(f"[red]--until[/]: {exc.message}")
            return EXIT_BAD_INPUT
    try:
        report = asyncio.run(_replay(settings, console, until, args.keep, args.role))
    except HiveError as exc:  # no such topics, a store that is not PostgreSQL, no credentials
        console.print(f"[red]replay[/]: {exc}")
        return EXIT_BAD_INPUT
    show(report, console, until is not None)
    return EXIT_DIFFERENT if report.differences else EXIT_SAME


def run_shadow(args, settings, console: Console) -> int:
    """Exit 0 when the recorded policy, simulated, reproduces every recorded placement; 1 naming each one it
    does not; 2 for a policy that cannot be loaded."""
    from ..codec import default_codec
    from ..exceptions import ConfigError, HiveError
    from ..kafka import access_for
    from ..topics import Topics
    from . import shadow
    try:
        policy = shadow.load_policy(args.policy)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/]")
        return EXIT_BAD_INPUT
    columns = (TextColumn("reading the log"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("log", total=None)
            events = asyncio.run(shadow.read_events(access_for(settings, args.role),
                                                    default_codec(settings.schemas_dir), Topics.from_settings(settings),
                                                    lambda n: progress.update(bar, completed=n)))
    except HiveError as exc:
        console.print(f"[red]replay[/]: {exc}")
        return EXIT_BAD_INPUT
    result = shadow.run_shadow(events, policy, int(settings.agent_timeout_seconds * 1000))
    table = Table("measure", "recorded log", "recorded policy (simulated)", f"{policy.name} (simulated)",
                  f"{policy.name} − recorded policy", title=f"shadow replay under {policy.name}")
    for row in shadow.rows(result):
        table.add_row(*row)
    console.print(table)
    path = Path(args.chart or f"shadow-{re.sub(r'[^A-Za-z0-9_.=-]+', '_', policy.name)}.png")
    console.print(f"chart: {shadow.chart(result, path)}")
    missing = result.unreproduced
    if missing:
        for task_id, recorded, simulated in missing:
            console.print(f"[red]not reproduced[/]: {task_id} was placed on {recorded}, the simulation placed it on "
                          f"{simulated}")
        console.print(f"[red]{len(missing)} of {len(result.recorded)} recorded placements not reproduced[/]")
        return EXIT_DIFFERENT
    console.print(f"[green]the recorded policy reproduces all {len(result.recorded)} recorded placements[/]")
    return EXIT_SAME


async def _replay(settings, console: Console, until, keep: bool, role: str):
    from ..codec import default_codec
    from ..kafka import access_for
    from .rebuild import replay
    columns = (TextColumn("replaying the log"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("log", total=None)
        return await replay(settings, default_codec(settings.schemas_dir), access_for(settings, role), until=until,
                            keep=keep, progress=lambda total, done: progress.update(bar, total=total, completed=done))


def show(report, console: Console, rebuilt_only: bool) -> None:
    if report.differences:
        table = Table("where", "key", "kind", "detail", title="differences")
        for d in report.differences:
            table.add_row(d.where, d.key, d.kind, d.detail)
        console.print(table)
    compared = ", ".join(f"{name} {n}" for name, n in report.compared.items())
    if rebuilt_only:
        verdict = "[green]rebuilt[/]"
    elif report.differences:
        verdict = f"[red]{len(report.differences)} differences[/]"
    else:
        verdict = "[green]identical[/]"
    console.print(f"{verdict}: {report.events} events in {report.seconds:.1f}s, {report.rate:,.0f} events/s"
                  + (f"; compared {compared}" if compared else ""))
    if report.kept:
        console.print(f"scratch schema kept: {report.scratch}")
