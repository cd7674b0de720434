"""`hive-streams worker`: create the topics, then run the engine until SIGTERM or SIGINT."""
from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import REGISTRY

from .. import logs
from ..collector import steady
from ..codec import default_codec
from ..metrics import FabricCollector, export
from ..metrics import serve as serve_metrics
from ..kafka import access_for, ensure_topics
from ..settings import Settings
from ..topics import Topics
from .engine import Engine


async def serve(settings: Settings) -> None:
    engine = Engine(settings, default_codec(settings.schemas_dir))  # a bad setting stops it before any IO
    await ensure_topics(access_for(settings, "worker"), Topics.from_settings(settings),
                        settings.replication_factor, settings.min_insync_replicas)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    export("worker", "consumer")
    REGISTRY.register(FabricCollector(engine.leading, int(settings.agent_timeout_seconds * 1000)))
    serve_metrics(settings.worker_metrics_port, settings.metrics_host)
    await engine.run(stop)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    logs.configure(loglevel, settings.log_format)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(loglevel.upper())))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    steady()
    asyncio.run(serve(settings))
