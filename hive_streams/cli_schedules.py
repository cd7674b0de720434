"""`hive-streams schedules | triggers create | list | get | delete`: cron schedules and event triggers over the API."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml

from .client import HiveClient

COMMANDS = ("schedules", "triggers")
EXIT_OK, EXIT_REFUSED, EXIT_NO_API = 0, 2, 3


def add_parsers(sub) -> None:
    p = sub.add_parser("schedules", help="cron schedules that submit a task at each slot")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="create a schedule from a task definition (YAML or JSON file)")
    c.add_argument("task_file", type=Path)
    c.add_argument("--cron", required=True, help="5 fields, or 6 with seconds last ('0 9 * * mon-fri')")
    c.add_argument("--timezone", default="UTC", help="IANA time zone, such as Europe/Berlin")
    c.add_argument("--catchup", default="skip", choices=["skip", "once", "all"],
                   help="missed slots: none run, the latest runs, or each runs (the latest 100)")
    c.add_argument("--id", help="the schedule's id within your tenant (default: a new one)")
    c.add_argument("--callback-url", default="", help="POSTed every status change of the schedule and its tasks")
    actions.add_parser("list", help="the schedules you see")
    g = actions.add_parser("get", help="one schedule with its next slot")
    g.add_argument("schedule_id")
    d = actions.add_parser("delete", help="stop a schedule: no slot fires after it")
    d.add_argument("schedule_id")
    t = sub.add_parser("triggers", help="event triggers that submit a task when matching task events occur")
    actions = t.add_subparsers(dest="action", required=True)
    c = actions.add_parser("create", help="create a trigger from its definition (YAML or JSON file: id, on, "
                                          "cooldown_seconds, target, callback_url)")
    c.add_argument("trigger_file", type=Path)
    actions.add_parser("list", help="the triggers you see")
    g = actions.add_parser("get", help="one trigger, with what it is counting")
    g.add_argument("trigger_id")
    d = actions.add_parser("delete", help="stop a trigger")
    d.add_argument("trigger_id")


def run(args, settings) -> int:
    client = HiveClient(settings.api_base_url, token=settings.token)
    try:
        response = _call(client.http, args)
        print(json.dumps(response.json(), indent=2))
        return EXIT_OK if response.is_success else EXIT_REFUSED
    except httpx.TransportError as exc:
        print(f"cannot reach the API at {settings.api_base_url}: {exc} (set HIVE_API_URL)")
        return EXIT_NO_API
    finally:
        client.close()


def _call(http: httpx.Client, args) -> httpx.Response:
    if args.command == "triggers":
        return _trigger_call(http, args)
    if args.action == "create":
        body = {"cron": args.cron, "timezone": args.timezone, "catchup": args.catchup,
                "target": {"task": yaml.safe_load(args.task_file.read_text())}}
        if args.id:
            body["id"] = args.id
        if args.callback_url:
            body["callback_url"] = args.callback_url
        return http.post("/api/schedules", json=body)
    if args.action == "list":
        return http.get("/api/schedules")
    if args.action == "get":
        return http.get(f"/api/schedules/{args.schedule_id}")
    return http.delete(f"/api/schedules/{args.schedule_id}")


def _trigger_call(http: httpx.Client, args) -> httpx.Response:
    if args.action == "create":
        return http.post("/api/triggers", json=yaml.safe_load(args.trigger_file.read_text()))
    if args.action == "list":
        return http.get("/api/triggers")
    if args.action == "get":
        return http.get(f"/api/triggers/{args.trigger_id}")
    return http.delete(f"/api/triggers/{args.trigger_id}")
