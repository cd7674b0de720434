"""`hive-streams audit verify`: a progress bar while the log is read, then every finding; exit 1 if any."""
from __future__ import annotations

import asyncio

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

EXIT_CLEAN, EXIT_FINDINGS = 0, 1
ROLE = "analyst"  # read-only: the event topics and the published heads


def add_parsers(sub) -> None:
    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    actions = audit.add_subparsers(dest="audit_action", required=True)
    actions.add_parser("verify", help="recompute the audit chain and compare it with the log and the published heads; "
                                      "exit 1 naming every modified, deleted, inserted or missing row")


def run(args, settings, console: Console | None = None) -> int:
    console = console or Console()
    report = asyncio.run(_verify(settings, console))
    show(report, console)
    return EXIT_CLEAN if report.ok else EXIT_FINDINGS


async def _verify(settings, console: Console):
    from ..codec import default_codec
    from ..kafka import access_for
    from ..store import create_schema, make_engine
    from ..topics import Topics
    from .verify import end_offsets, verify
    topics, kafka = Topics.from_settings(settings), access_for(settings, ROLE)
    engine = make_engine(settings.store_url)
    try:
        create_schema(engine)
        total = sum((await end_offsets(kafka, topics)).values())
        columns = (TextColumn("reading the log"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("log", total=total)
            return await verify(kafka, engine, default_codec(settings.schemas_dir), topics,
                                lambda n: progress.advance(bar, n))
    finally:
        engine.dispose()


def show(report, console: Console) -> None:
    if report.findings:
        table = Table("kind", "topic", "partition", "offset", "detail", title="audit findings")
        for f in report.findings:
            table.add_row(f.kind, f.topic, str(f.partition), str(f.offset), f.detail)
        console.print(table)
    verdict = "[green]audit log verified[/]" if report.ok else f"[red]{len(report.findings)} findings[/]"
    console.print(f"{verdict}: {report.rows} rows, {report.records} committed records, {report.checked} compared, "
                  f"{report.heads} published heads, {report.pending} records not yet projected")
