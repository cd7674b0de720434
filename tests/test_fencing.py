"""A deposed decider can never make an event visible, and its successor loses nothing.

The engine runs in this process against the real broker. Starting producers with the
transactional ids a writer of partition 0 alone fences is exactly what a new owner of it does on
assignment: from then on the old owner's writes must fail, and a command it was deciding must be
decided once. Here the successor is no member of the group, so the fenced worker must take its range
back by itself.
"""
from __future__ import annotations

import asyncio

import pytest

from hive_streams.codec import default_codec
from hive_streams.domain import commands as c
from hive_streams.domain import events as e
from hive_streams.domain.ledger import LEDGER_ID
from hive_streams.kafka import CommandSender, transactional_producer
from hive_streams.kafka.principal import principal_header
from hive_streams.settings import Settings
from hive_streams.streams.writers import fenced_by, writer_id

from .engines import owns_all, running, until
from .eventlog import read_all
from .roles import SERVICE_SECRET, as_role, credentials, service_sealer

pytestmark = pytest.mark.stack
AS_API = [principal_header("acme/admin")]  # deposits name the principal that authorised them, as the API does


async def deposits(bootstrap, topics) -> list:
    records = await read_all(bootstrap, topics.ledger_events, 1)
    return [r for r in records if isinstance(r.event, e.FundsDeposited)]


async def test_a_fenced_owner_writes_nothing_and_the_next_owner_decides_once(kafka_bootstrap, topics):
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        service_secret=SERVICE_SECRET.decode(),
                        partitions=topics.partitions, worker_id=topics.prefix, session_timeout_seconds=6)
    sender = CommandSender(as_role("api"), topics, default_codec(), "/test", sealer=service_sealer())  # deposits come from the API
    await sender.start()
    try:
        async with running(settings) as old:
            await until(lambda: owns_all(old), 60, "the first engine to own every partition")
            await sender.send_and_wait(c.DepositFunds(LEDGER_ID, "before", 1, "acme/a", 100, "r"), extra_headers=AS_API)
            await until(lambda: old.decided >= 1, 30, "the first deposit")
            # one writer for the worker's range, shared by every command topic's partitions
            assert sorted(old.writers) == list(range(topics.partitions))
            writer = old.writers[0]
            assert all(w is writer for w in old.writers.values()) and writer.span == (0, topics.partitions - 1)
            assert set(writer.members) == set(old.owned)

            # a successor that owns partition 0 alone (the ledger's and every topic's 0) starts its writer:
            # the old owner, whose range holds 0, is fenced
            fences = [transactional_producer(as_role("worker"), writer_id(settings.worker_id, span))
                      for span in fenced_by((0, 0), topics.partitions)]
            assert writer_id(settings.worker_id, writer.span) in [f._txn_manager.transactional_id for f in fences]
            for successor in fences:
                await successor.start()
                await successor.begin_transaction()
                await successor.abort_transaction()
            held = old.writers[0]
            await sender.send_and_wait(c.DepositFunds(LEDGER_ID, "during", 2, "acme/a", 5, "r"), extra_headers=AS_API)
            await until(lambda: old.writers.get(0) is not held, 30, "the old owner to let go of its writer")
            assert all(w is not held for w in old.writers.values()), "fenced, it still holds its writer"
            decided = old.decided
            # the successor was no member of the group (a stale worker that started late, then died): the fenced
            # worker rejoins, takes its range again, fencing the successor in turn, and decides the deposit once
            await until(lambda: owns_all(old) and old.writers.get(0) is not None and old.writers[0] is not held, 60,
                        "the fenced worker to take its range again")
            await until(lambda: old.decided > decided, 30, "the deposit the fenced writer could not write")
            for successor in fences:
                await successor.stop()
            await asyncio.sleep(1)
        made = await deposits(kafka_bootstrap, topics)
        assert [r.header("ce_causationid") for r in made] == ["before", "during"]
        assert [r.event.amount for r in made] == [100, 5]

        async with running(settings) as new:  # a restart decides nothing again
            await until(lambda: owns_all(new), 60, "the next engine to own every partition")
            await asyncio.sleep(1)
        assert [r.header("ce_causationid") for r in await deposits(kafka_bootstrap, topics)] == ["before", "during"]
    finally:
        await sender.stop()
