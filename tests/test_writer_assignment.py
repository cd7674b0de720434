"""The engine shares one fenced writer among the command topics' partitions of one range of numbers: that holds
only if the group's assignment gives each worker one range, the same for every command topic, whatever the
number of workers; and a writer's start fences every writer an earlier owner of one of its numbers had, and no
writer of the same assignment. Pure: the assignor the engine's consumer uses, on the topic layout the engine
subscribes to."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from hive_streams.streams.writers import ASSIGNOR, Writer, assignable, fenced_by, span_of, writer_id
from hive_streams.topics import Topics


class Layout:
    """What the assignor reads of the cluster: each topic's partitions."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def partitions_for_topic(self, topic: str):
        return set(range(self.counts[topic]))


def command_topics(topics: Topics) -> dict[str, int]:
    return {name: count for name, (count, _) in topics.layout().items() if name.endswith(".commands")}


@pytest.mark.parametrize("partitions", [1, 4, 7])
@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 9])
def test_every_command_topic_partition_of_one_number_goes_to_one_worker(partitions, workers):
    topics = Topics("hive", partitions)
    counts = command_topics(topics)
    assert len(counts) >= 7 and set(counts.values()) == {1, partitions}  # the ledger's single partition
    members = {f"worker-{i:02d}-{'ab'[i % 2]}": ConsumerProtocolMemberMetadata(0, sorted(counts), b"")
               for i in range(workers)}
    assignment = ASSIGNOR.assign(Layout(counts), members)
    owner: dict[int, str] = {}
    for member, given in assignment.items():
        for topic, numbers in given.assignment:
            for number in numbers:
                assert owner.setdefault(number, member) == member, f"{topic}[{number}] split from its number"
    assert sorted(owner) == list(range(partitions))  # every number is owned


def spans_of(partitions: int, workers: int) -> dict[str, tuple[int, int]]:
    """Each worker's range under the engine's assignor, from the assignment itself."""
    counts = command_topics(Topics("hive", partitions))
    members = {f"worker-{i:02d}": ConsumerProtocolMemberMetadata(0, sorted(counts), b"") for i in range(workers)}
    spans = {}
    for member, given in ASSIGNOR.assign(Layout(counts), members).items():
        numbers = {n for _, ns in given.assignment for n in ns}
        if numbers:
            spans[member] = span_of(numbers)  # raises unless one range
    return spans


@pytest.mark.parametrize("partitions", [1, 2, 4, 5, 7, 8])
def test_a_writer_fences_every_earlier_owner_of_its_numbers_and_no_writer_of_its_own_generation(partitions):
    every = assignable(partitions)
    for workers in range(1, partitions + 3):
        now = spans_of(partitions, workers)
        assert set(now.values()) <= every  # the ranges the fencing knows are those the assignor gives
        for member, span in now.items():
            fenced = set(fenced_by(span, partitions))
            others = {s for m, s in now.items() if m != member}
            assert not fenced & others, f"{span} would fence a writer of its own generation"
            for earlier in range(1, partitions + 3):  # any earlier group size
                for old in spans_of(partitions, earlier).values():
                    if old[0] <= span[1] and span[0] <= old[1]:
                        assert old in fenced, f"{span} leaves {old}, an earlier owner of one of its numbers"


def test_the_engine_assigns_by_range_and_names_a_writer_by_its_range():
    assert ASSIGNOR is RangePartitionAssignor
    assert writer_id("hive-worker", (3, 3)) == "hive-worker.deciders.3"  # under the worker's transactional-id prefix
    assert writer_id("hive-worker", (0, 3)) == "hive-worker.deciders.0-3"
    with pytest.raises(ValueError):
        span_of({0, 2})


class Recording:
    """A producer that notes its calls; its own id's producer id is slow to come, as a coordinator's can be."""

    def __init__(self, name: str, calls: list, slow: bool = False):
        self.name, self.calls, self.slow = name, calls, slow

    async def start(self):
        self.calls.append((self.name, "start"))

    async def begin_transaction(self):
        await asyncio.sleep(0.05 if self.slow else 0)
        self.calls.append((self.name, "fenced"))

    async def abort_transaction(self):
        self.calls.append((self.name, "abort"))

    async def stop(self):
        self.calls.append((self.name, "stop"))


async def test_a_writer_starts_its_own_id_before_it_fences_the_others():
    """Two writers whose ranges meet cannot both stay live only if each fences the other's id after its own start
    has gone through (see `Writer.fence`)."""
    calls: list = []
    own = Recording("0-3", calls, slow=True)
    others = [Recording(name, calls) for name in ("0", "0-1", "1", "2", "2-3", "3")]
    await Writer((0, 3), own, "g", others).fence()
    own_fenced = calls.index(("0-3", "fenced"))
    assert all(calls.index((o.name, "start")) > own_fenced for o in others)
    assert all((o.name, "fenced") in calls and (o.name, "stop") in calls for o in others)
    assert ("0-3", "stop") not in calls  # the writer's own producer stays up
