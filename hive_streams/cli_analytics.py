"""`hive-streams tail | export | stats | dlq`: the event log for analysts and operators."""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .analytics import deadletters as dl
from .analytics.export import AvroFiles
from .analytics.filters import Filter, family, parse_time
from .analytics.log import iso, jsonable, partitions, rows, size
from .analytics.performance import Row, fold
from .codec import default_codec
from .codec.avro import to_record
from .exceptions import HiveError
from .kafka.access import ROLES, access_for
from .topics import Topics

COMMANDS = ("tail", "export", "stats", "dlq")


def _filters(p, follow: bool = True) -> None:
    p.add_argument("--topic", action="append", default=[],
                   help="a topic or family (task, agent, ledger, execution, schedule, trigger, callback, alerts); "
                        "repeatable")
    p.add_argument("--type", action="append", default=[], help="event types, comma-separated (TaskCompleted); repeatable")
    p.add_argument("--key", action="append", default=[], help="an aggregate id (task, agent or ledger id); repeatable")
    p.add_argument("--tenant", default="", help="only records of this tenant (the `<tenant>/` of their principal)")
    p.add_argument("--since", help="ISO 8601 time or a duration before now (30m, 2h, 7d)")
    p.add_argument("--until", help="ISO 8601 time or a duration before now")
    p.add_argument("--role", default="analyst", choices=ROLES, help="the Kafka role to read as (default analyst)")
    if follow:
        p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
        p.add_argument("--limit", type=int, default=0, help="stop after this many events (0: no limit)")


def add_parsers(sub) -> None:
    _filters(sub.add_parser("tail", help="decoded events as JSON lines (read_committed, analyst credentials)"))
    ex = sub.add_parser("export", help="Avro object container files, one per event type")
    ex.add_argument("--out", type=Path, required=True, help="directory of the files (<Type>.avro)")
    _filters(ex, follow=False)
    st = sub.add_parser("stats", help="per-agent and per-capability throughput, success, run time, queue wait, earnings")
    st.add_argument("--json", action="store_true", help="JSON instead of tables")
    _filters(st, follow=False)
    dq = sub.add_parser("dlq", help="dead letters: list, show, re-drive commands (admin credentials)")
    dq.add_argument("action", choices=["list", "show", "redrive"])
    dq.add_argument("offsets", nargs="*", type=int, help="dead-letter offsets (show, redrive)")
    dq.add_argument("--topic", default="", help="the source topic or family (task, agent, ledger, execution, schedule, trigger, callback)")
    dq.add_argument("--reason", default="", help="a substring of the reason")
    dq.add_argument("--since", help="ISO 8601 time or a duration before now (30m, 2h, 7d)")
    dq.add_argument("--until", help="ISO 8601 time or a duration before now")
    dq.add_argument("--again", action="store_true", help="re-drive letters that were re-driven already")
    dq.add_argument("--json", action="store_true", help="list as JSON lines")
    dq.add_argument("--role", default="admin", choices=ROLES, help="the Kafka role (reading dead letters needs admin)")


def _now() -> int:
    return int(time.time() * 1000)


def _filter(args) -> Filter:
    now = _now()
    return Filter(tuple(args.topic), tuple(t for arg in args.type for t in arg.split(",") if t), tuple(args.key),
                  args.tenant, parse_time(args.since, now) if args.since else None,
                  parse_time(args.until, now) if args.until else None)


def _topics(args, topics: Topics) -> list[str]:
    """The topics named on the command line, else every event topic (a family named is a filter on those)."""
    families = {family(name) for name in topics.event_topics}
    named = [t for t in args.topic if t not in families]
    return named or list(topics.event_topics)


def run(args, settings) -> int:
    err = Console(stderr=True)
    try:
        handler = {"tail": tail, "export": export, "stats": stats, "dlq": dlq}[args.command]
        return asyncio.run(handler(args, settings, err))
    except (HiveError, ValueError) as exc:
        err.print(f"[red]hive-streams {args.command}[/]: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


async def tail(args, settings, err) -> int:
    kafka, topics = access_for(settings, args.role), Topics.from_settings(settings)
    count = 0
    try:
        async for row in rows(kafka, _topics(args, topics), _filter(args), default_codec(), follow=args.follow):
            sys.stdout.write(json.dumps(row.as_json(), separators=(",", ":")) + "\n")
            sys.stdout.flush()
            count += 1
            if args.limit and count >= args.limit:
                break
    except BrokenPipeError:  # `| head`
        pass
    return 0


async def export(args, settings, err) -> int:
    kafka, topics, codec = access_for(settings, args.role), Topics.from_settings(settings), default_codec()
    names = _topics(args, topics)
    wanted = _filter(args)
    total = await size(kafka, await partitions(kafka, [t for t in names if wanted.wants_topic(t)]))
    metadata = {"hive.exported_at": iso(_now()), "hive.topics": ",".join(names)}
    progress = Progress(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, transient=True)
    skipped: list = []
    with progress, AvroFiles(args.out, codec.registry, metadata) as files:
        bar = progress.add_task("export", total=total)
        last = {}
        async for row in rows(kafka, names, wanted, codec, skipped=skipped):
            files.write(row.obj)
            last[(row.topic, row.partition)] = row.offset
            progress.update(bar, completed=sum(o + 1 for o in last.values()))
    for name, n in sorted(files.counts.items()):
        err.print(f"{args.out / (name + '.avro')}: {n} records")
    if skipped:
        err.print(f"[yellow]{len(skipped)} undecodable records skipped[/], first at {skipped[0][0]}: {skipped[0][1]}")
    return 0


def _table(title: str, rows_: list[Row]) -> Table:
    table = Table(title=title)
    for col in ("name", "done", "failed", "success", "per hour", "run p50", "run p95", "wait p50", "wait p95", "earned"):
        table.add_column(col, justify="left" if col == "name" else "right")

    def ms(v):
        return "-" if v is None else f"{v / 1000:.2f}s"
    for r in rows_:
        table.add_row(r.name, str(r.completed), str(r.failed), "-" if r.success_rate is None else f"{r.success_rate:.0%}",
                      "-" if r.per_hour is None else f"{r.per_hour:.1f}", ms(r.run_p50_ms), ms(r.run_p95_ms),
                      ms(r.wait_p50_ms), ms(r.wait_p95_ms), f"{r.earnings / 100:.2f}")
    return table


async def stats(args, settings, err) -> int:
    kafka, topics = access_for(settings, args.role), Topics.from_settings(settings)
    wanted = _filter(args)
    events = [row.obj async for row in rows(kafka, [topics.task_events, topics.ledger_events], wanted, default_codec())]
    model = fold(events)
    if args.json:
        print(json.dumps({"agents": [r.__dict__ for r in model.agents()],
                          "capabilities": [r.__dict__ for r in model.capabilities_rows()]}))
        return 0
    console = Console()
    console.print(_table("agents", model.agents()))
    console.print(_table("capabilities", model.capabilities_rows()))
    return 0


async def dlq(args, settings, err) -> int:
    kafka, topics = access_for(settings, args.role), Topics.from_settings(settings)
    now = _now()
    wanted = dl.LetterFilter(args.topic, args.reason, parse_time(args.since, now) if args.since else None,
                             parse_time(args.until, now) if args.until else None)
    found = [letter for letter in await dl.letters(kafka, topics, default_codec()) if wanted.matches(letter)]
    if args.offsets:
        found = [letter for letter in found if letter.offset in args.offsets]
        missing = set(args.offsets) - {letter.offset for letter in found}
        if missing:
            raise HiveError(f"no dead letter at offset {', '.join(map(str, sorted(missing)))} (with these filters)")
    if args.action == "list":
        return _list(found, args.json)
    if args.action == "show":
        for letter in found:
            print(json.dumps({**letter.summary(), "headers": {k: v.decode(errors="replace") for k, v in letter.headers},
                              "command": _command_json(letter)}, indent=2))
        return 0
    if not args.offsets and not (args.topic or args.reason or args.since or args.until):
        raise HiveError("name the dead letters to re-drive: offsets, or filters (--reason, --topic, --since)")
    failed = 0
    for letter in found:
        try:
            where = await dl.redrive(kafka, topics, letter, again=args.again)
            err.print(f"dead letter {letter.offset} ({letter.type}) re-driven to {where}")
        except dl.NotRedrivable as exc:
            err.print(f"[yellow]skipped[/]: {exc}")
            failed += 1
    return 1 if failed and args.offsets else 0


def _command_json(letter) -> dict | None:
    return jsonable(to_record(letter.command)) if letter.command is not None else None


def _list(found, as_json: bool) -> int:
    if as_json:
        for letter in found:
            print(json.dumps(letter.summary()))
        return 0
    table = Table(title=f"{len(found)} dead letters")
    for col in ("offset", "time", "type", "from", "reason", "re-driven to"):
        table.add_column(col)
    for letter in found:
        table.add_row(str(letter.offset), iso(letter.timestamp), letter.type, letter.origin, letter.reason,
                      ", ".join(letter.redrives) or "-")
    Console().print(table)
    return 0
