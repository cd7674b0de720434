"""`hive-streams worker`: create the topics, then run the Faust worker until stopped."""
from __future__ import annotations

import asyncio
import logging

from faust.worker import Worker

from ..kafka_admin import ensure_topics
from ..settings import Settings
from ..topics import Topics
from .app import create_app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(ensure_topics(settings.bootstrap, Topics.from_settings(settings)))
    app = create_app(settings)
    Worker(app, loglevel=loglevel, quiet=True, override_logging=False).execute_from_commandline()
