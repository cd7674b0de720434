"""`hive-streams up`: the whole fabric on this machine, a demo workflow, Ctrl-C to stop."""
from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from rich.console import Console

from .auth.development import development_secret
from .auth.tokens import mint
from .client import HiveClient
from .kafka.access import access_for
from .kafka.admin import ensure_topics
from .kafka.seal import service_secret
from .processes import Fabric, wait_until
from .settings import Settings
from .topics import Topics

DEMO = Path(__file__).parent / "demo" / "workflow.yaml"
ADMIN_SUB, ADMIN_TENANT, ADMIN_TTL_SECONDS = "dev-admin", "dev", 7 * 86400
console = Console()


def _api_ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _follow(client: HiveClient, task_id: str) -> None:
    for frame in client.follow(task_id):
        node = f" [bold]{frame.data['node_id']}[/]" if "node_id" in frame.data else ""
        console.print(f"  {frame.event}{node}")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _admin_token(s: Settings, env: dict[str, str]) -> str:
    """A development admin's token, signed with HIVE_JWT_SECRET or a secret kept in $HIVE_HOME for the API too."""
    secret = s.jwt_secret
    if not secret:
        if s.jwt_jwks:
            return s.token  # the identity provider issues tokens; HIVE_TOKEN should hold one
        secret = env["HIVE_JWT_SECRET"] = development_secret(s.home, create=True)
    return mint(secret, ADMIN_SUB, ADMIN_TENANT, ["admin"], ADMIN_TTL_SECONDS, issuer=s.jwt_issuer)


def _print_token(token: str, base: str) -> None:
    console.print(f"[green]development admin[/] {ADMIN_TENANT}/{ADMIN_SUB}; its token (7 days; sign in to the "
                  f"dashboard at {base}/ with it):")
    console.print(f"export HIVE_TOKEN={token}", soft_wrap=True, highlight=False)
    console.print("others: hive-streams token --role developer --tenant acme --sub alice")


def up(s: Settings) -> int:
    env = {}
    if not s.kafka_bootstrap:
        from .infra import kafka
        console.print("[cyan]starting Kafka (KRaft) from Maven Central jars...[/]")
        env["HIVE_KAFKA_BOOTSTRAP"] = kafka.up(s)  # and grants the roles' ACLs on HIVE_TOPIC_PREFIX
    asyncio.run(ensure_topics(access_for(s, "worker"), Topics.from_settings(s),
                              s.replication_factor, s.min_insync_replicas))  # the worker may create them
    console.print(f"store: {s.store_url}")
    token = _admin_token(s, env)
    service_secret(s.service_secret, s.home, create=True)  # made once here, read by the API and the worker
    fabric = Fabric(env, Path(s.home) / "logs")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        fabric.spawn("connect", "connect")
        fabric.worker()
        fabric.spawn("api", "api")
        fabric.executor("desktop-1", "echo,shell,python,sleep,http", slots=2)
        fabric.executor("cloud-1", "echo,shell,python,sleep,http,gpu:0.9", slots=4)
        base = f"http://{s.api_host}:{s.api_port}"
        wait_until(lambda: fabric.check_alive() or _api_ready(base), 60, what="the API")
        console.print(f"[green]API[/] {base}   health {base}/health   logs {fabric.log_dir}")
        if token:
            _print_token(token, base)
            client = HiveClient(base, token=token)
            task_id = client.submit(DEMO.read_bytes()).json()["task_id"]
            console.print(f"demo task {task_id}: {base}/api/tasks/{task_id}  events {base}/api/tasks/{task_id}/events")
            _follow(client, task_id)
            console.print("[green]demo finished[/]; the fabric keeps running. Ctrl-C stops everything.")
        else:
            console.print("[yellow]no demo[/]: HIVE_JWT_JWKS is set; put a token of your issuer in HIVE_TOKEN")
        while True:
            fabric.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        fabric.stop()
        if "HIVE_KAFKA_BOOTSTRAP" in env:
            from .infra import kafka
            kafka.down(s)
    return 0
