"""`hive-streams`: one command for every process of the fabric."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys

from . import cli_analytics, cli_schedules, cli_watch, cli_workflows, logs, tracing
from .audit import cli as audit_cli
from .replay import cli as replay_cli
from . import settings as settings_mod
from .collector import freeze_start_up, steady
from .domain.model import NODE_KINDS, Capability, Hardware
from .processes import exit_with_parent
from .exceptions import ConfigError


def parse_target(text: str) -> tuple[str, float]:
    """`max_response_seconds=5` -> a performance target of the offer, compared with what heartbeats report."""
    from .domain.alerts import TARGETS
    name, _, raw = text.partition("=")
    if name not in TARGETS:
        raise argparse.ArgumentTypeError(f"unknown target {name!r} (known: {', '.join(TARGETS)})")
    try:
        return name, float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: {raw!r} is not a number") from None
TRACED = ("worker", "api", "executor")  # the processes that open spans: each a service of its own


def parse_capabilities(text: str) -> tuple[Capability, ...]:
    """`shell:0.9,echo,python` -> capabilities (proficiency 1.0 when not given)."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, prof = item.partition(":")
        out.append(Capability(name, float(prof) if prof else 1.0))
    return tuple(out)


async def _until_signal(run, *args) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(*args, stop)


def cmd_grant(s) -> int:
    """The roles' ACLs on HIVE_TOPIC_PREFIX, as the admin: the launched broker's, or HIVE_KAFKA_BOOTSTRAP's."""
    from .kafka import acls
    from .kafka.access import access_for, credentials_path, read_credentials
    from .topics import Topics
    wanted = acls.grants(Topics.from_settings(s), s.worker_id)
    if s.kafka_bootstrap:
        path = credentials_path(s)
        users = {role: e["username"] for role, e in read_credentials(path).items()} if path.exists() else {}
        asyncio.run(acls.apply(access_for(s, "admin"), wanted, users))
    else:
        from .infra import kafka
        kafka.grant(s)
    print("\n".join(map(str, wanted)))
    return 0


def cmd_credentials(s) -> int:
    """The roles' passwords as KEY=value lines (docker-compose.kafka.yml reads them), made first if missing."""
    from .kafka.access import credentials_path, read_credentials, write_credentials
    path = credentials_path(s)
    users = read_credentials(path) if path.exists() else write_credentials(path, s.kafka_mechanism)
    print("\n".join(f"HIVE_KAFKA_{role.upper()}_PASSWORD={entry['password']}" for role, entry in users.items()))
    return 0


def cmd_infra(module, args, s) -> int:
    if args.action == "grant":
        return cmd_grant(s)
    if args.action == "credentials":
        return cmd_credentials(s)
    if args.action == "up":
        print(module.up(s))
    elif args.action == "down":
        module.down(s)
    else:
        print(module.status(s))
    return 0


def cmd_worker(args, s) -> int:
    from .streams.worker import run_worker
    run_worker(s, args.loglevel)
    return 0


def cmd_executor(args, s) -> int:
    from .executor.runtime import AgentOffer, Executor
    agent_id = args.agent_id or f"agent-{__import__('uuid').uuid4().hex[:8]}"
    hardware = Hardware(args.gpu_type, args.vram_gb, args.cpu_cores or os.cpu_count() or 1, args.ram_gb)
    offer = AgentOffer(agent_id, args.name or agent_id, parse_capabilities(args.capabilities), args.slots,
                       args.endpoint, args.model, hardware, args.price, dict(args.target or ()))
    from .metrics import serve
    serve(args.metrics_port if args.metrics_port is not None else s.executor_metrics_port, s.metrics_host)
    steady()
    asyncio.run(_until_signal(Executor(s, offer).run))
    return 0


def cmd_api(args, s) -> int:
    import uvicorn
    from .api.app import create_app
    logging_config = {} if s.log_format == "text" else {"log_config": None}  # None: its lines go to our handler
    freeze_start_up()  # Python's thresholds kept: a closed feed leaves cycles that die old
    uvicorn.run(create_app(s), host=s.api_host, port=s.api_port, log_level=args.loglevel, lifespan="on",
                **logging_config)
    return 0


def cmd_connect(args, s) -> int:
    from connectors.audit import run_audit
    from .metrics import serve
    serve(s.connect_metrics_port, s.metrics_host)
    steady()
    asyncio.run(_until_signal(run_audit, s))
    return 0


def cmd_token(args, s) -> int:
    from .auth.development import signing_secret
    from .auth.tokens import mint, parse_ttl
    try:
        ttl = parse_ttl(args.ttl)
    except ValueError as exc:
        print(f"--ttl: {exc}", file=sys.stderr)
        return 2
    print(mint(signing_secret(s.jwt_secret, s.home), args.sub or args.role, args.tenant, [args.role], ttl,
               args.permission, s.jwt_issuer))
    return 0


def cmd_producer_key(args, s) -> int:
    from .kafka.seal import producer_key, service_secret
    if "/" not in args.principal:
        print("principal: TENANT/SUB, the account that submits and pays", file=sys.stderr)
        return 2
    print(producer_key(service_secret(s.service_secret, s.home), args.principal).hex())
    return 0


def cmd_up(args, s) -> int:
    from .launcher import up
    return up(s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hive-streams", description=__doc__)
    parser.add_argument("--loglevel", default="info")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("kafka", "postgres"):
        p = sub.add_parser(name, help=f"the project's own {name} server")
        kafka_only = ["grant", "credentials"] if name == "kafka" else []
        p.add_argument("action", choices=["up", "down", "status", *kafka_only],
                       help="grant: the roles' ACLs on HIVE_TOPIC_PREFIX (`up` grants them on the launched broker); "
                            "credentials: each role's password as KEY=value lines, made first if missing")
        if name == "kafka":
            p.add_argument("--brokers", type=int, help="nodes of a new cluster (3 for a replicated one; default 1); "
                                                       "a formatted home keeps its count")
    sub.add_parser("worker", help="the worker: deciders (one fenced writer per partition number) and the matcher")
    ex = sub.add_parser("executor", help="an executor that registers an agent and runs tasks")
    ex.add_argument("--agent-id")
    ex.add_argument("--name")
    ex.add_argument("--capabilities", default=",".join(NODE_KINDS))
    ex.add_argument("--slots", type=int, default=2, help="tasks it runs at once")
    ex.add_argument("--price", type=float, default=0.0, help="what it charges per task")
    ex.add_argument("--model", default="")
    ex.add_argument("--endpoint", default="")
    ex.add_argument("--gpu-type", default="")
    ex.add_argument("--vram-gb", type=float, default=0.0)
    ex.add_argument("--cpu-cores", type=int, default=0, help="default: this machine's")
    ex.add_argument("--ram-gb", type=float, default=0.0)
    ex.add_argument("--target", type=parse_target, action="append",
                    help="a performance target of the offer, min_tokens_per_second=N or max_response_seconds=N "
                         "(repeatable); a heartbeat that misses it raises a performance_target alert")
    ex.add_argument("--metrics-port", type=int,
                    help="port of its Prometheus /metrics (default HIVE_EXECUTOR_METRICS_PORT; 0: off)")
    sub.add_parser("api", help="the HTTP API and SSE feeds")
    sub.add_parser("connect", help="the audit-log and read-model projection")
    sub.add_parser("up", help="everything: Kafka, store, worker, projection, API, two executors, a demo")
    tk = sub.add_parser("token", help="print a token signed with HIVE_JWT_SECRET (or the development secret of `up`)")
    tk.add_argument("--role", required=True, choices=["admin", "developer", "viewer", "service"])
    tk.add_argument("--tenant", required=True)
    tk.add_argument("--sub", help="who it names (default: the role); its account is TENANT/SUB")
    tk.add_argument("--ttl", default="24h", help="how long it is valid: 90s, 30m, 24h, 7d")
    tk.add_argument("--permission", action="append", help="narrow the role to this permission (repeatable)")
    pk = sub.add_parser("producer-key", help="print the key with which PRINCIPAL's producer seals its SubmitTask "
                        "commands (needs the service secret: HIVE_SERVICE_SECRET or $HIVE_HOME's)")
    pk.add_argument("principal", help="TENANT/SUB")
    cli_watch.add_parsers(sub)
    cli_workflows.add_parsers(sub)
    cli_analytics.add_parsers(sub)
    cli_schedules.add_parsers(sub)
    audit_cli.add_parsers(sub)
    replay_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    if args.command in ("worker", "executor", "api", "connect"):
        exit_with_parent()
    s = settings_mod.load()
    logs.configure(args.loglevel, s.log_format)
    logging.getLogger("aiokafka.conn").setLevel(max(logging.WARNING, logging.root.level))  # a line per SASL login
    if args.command in TRACED:
        tracing.setup(s, f"hive-{args.command}")
    if args.command == "kafka":
        from .infra import kafka
        if args.brokers:
            s = dataclasses.replace(s, kafka_brokers=args.brokers)
        return cmd_infra(kafka, args, s)
    if args.command == "postgres":
        from .infra import postgres
        return cmd_infra(postgres, args, s)
    if args.command in cli_watch.COMMANDS:
        return cli_watch.run(args, s)
    if args.command in cli_workflows.COMMANDS:
        return cli_workflows.run(args, s)
    if args.command in cli_schedules.COMMANDS:
        return cli_schedules.run(args, s)
    if args.command in cli_analytics.COMMANDS:
        return cli_analytics.run(args, s)
    if args.command == "audit":
        return audit_cli.run(args, s)
    if args.command == "replay":
        return replay_cli.run(args, s)
    handlers = {"worker": cmd_worker, "executor": cmd_executor, "api": cmd_api, "connect": cmd_connect, "up": cmd_up,
                "token": cmd_token, "producer-key": cmd_producer_key}
    try:
        return handlers[args.command](args, s)
    except ConfigError as exc:
        print(f"hive-streams {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
