"""The alert rules' shell on the real broker: what it writes, and a new leader that restores from the log."""
from __future__ import annotations

import pytest

from hive_streams.codec import default_codec
from hive_streams.domain import events as e
from hive_streams.settings import Settings
from hive_streams.streams.alerting import Alerter

from .eventlog import read_all
from .roles import credentials

pytestmark = pytest.mark.stack
S = 1000


async def leader(kafka_bootstrap, topics) -> Alerter:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_credentials=credentials(), topic_prefix=topics.prefix,
                        worker_id=topics.prefix)
    alerter = Alerter(default_codec(), topics, settings)
    await alerter.start()
    assert alerter.ready
    await alerter.flush(0)  # caught up: live from now
    return alerter


async def beats(alerter: Alerter, first_seq: int, cpu: float, count: int = 3) -> None:
    for seq in range(first_seq, first_seq + count):
        alerter.observe(e.AgentHeartbeat("box", seq, seq * S, cpu_percent=cpu))
        await alerter.flush(seq * S)


async def test_a_new_leader_keeps_the_open_alert_and_resolves_it_once(kafka_bootstrap, topics):
    first = await leader(kafka_bootstrap, topics)
    await beats(first, 1, 95.0)
    await first.stop()
    written = [r.event for r in await read_all(kafka_bootstrap, topics.alerts, 1)]
    assert [(type(a).__name__, a.alert_id, a.seq) for a in written] == [("AlertRaised", "high_cpu:box", 1)]

    second = await leader(kafka_bootstrap, topics)  # a new leader: it replays nothing, it restores the alerts
    assert set(second.alerting.open) == {"high_cpu:box"}
    await beats(second, 4, 97.0)  # still hot: open already, nothing new
    await beats(second, 7, 10.0)  # clear for three heartbeats
    await second.stop()
    written = [r.event for r in await read_all(kafka_bootstrap, topics.alerts, 1)]
    assert [(type(a).__name__, a.seq, a.at) for a in written] == [("AlertRaised", 1, 3 * S),
                                                                  ("AlertResolved", 2, 9 * S)]
