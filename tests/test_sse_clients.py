"""The SSE benchmark's client counts every frame: a duplicate or a gap fails it, whatever else arrived."""
from __future__ import annotations

import array

from bench.sse.clients import Client, totals


def feed(client: Client, frames) -> None:
    for seq, kind in frames:
        data = f'{{"type":"{kind}","task_id":"p-1","seq":{seq},"at":0}}'.encode()
        client.on_frame(kind.encode(), data, 5.0, array.array("f"))


def test_every_event_once_and_in_order_is_complete():
    client = Client("p-", 1)
    feed(client, [(1, "TaskSubmitted"), (2, "TaskValidated"), (3, "TaskCompleted")])
    assert client.complete() and client.counts()["duplicates"] == client.counts()["gaps"] == 0


def test_a_duplicate_frame_fails_the_client_and_is_counted():
    client = Client("p-", 1)
    feed(client, [(1, "TaskSubmitted"), (2, "TaskValidated"), (2, "TaskValidated"), (3, "TaskCompleted")])
    assert not client.complete()
    assert client.counts()["duplicates"] == 1 and client.counts()["task_frames"] == 4


def test_a_gap_or_a_reordering_fails_the_client():
    gap, late = Client("p-", 1), Client("p-", 1)
    feed(gap, [(1, "TaskSubmitted"), (3, "TaskCompleted")])
    feed(late, [(2, "TaskValidated"), (1, "TaskSubmitted"), (3, "TaskCompleted")])
    assert not gap.complete() and gap.counts()["gaps"] == 1
    assert not late.complete() and late.counts()["out_of_order"] == 1


def test_totals_add_up_every_clients_frames():
    a, b = Client("p-", 1), Client("p-", 1)
    feed(a, [(1, "TaskSubmitted"), (2, "TaskCompleted")])
    feed(b, [(1, "TaskSubmitted"), (1, "TaskSubmitted"), (2, "TaskCompleted")])
    summary = totals([a, b])
    assert (summary["complete"], summary["task_frames"], summary["duplicates"]) == (1, 5, 1)
