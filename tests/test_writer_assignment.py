"""The engine shares one fenced writer among the command topics' partitions of one number: that holds only
if the group's assignment gives partition p of every command topic to the same worker, whatever the number
of workers. Pure: the assignor the engine's consumer uses, on the topic layout the engine subscribes to."""
from __future__ import annotations

import pytest
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from hive_streams.streams.writers import ASSIGNOR, writer_id
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


def test_the_engine_assigns_by_range_and_names_a_writer_by_number():
    assert ASSIGNOR is RangePartitionAssignor
    assert writer_id("hive-worker", 3) == "hive-worker.deciders.3"  # under the worker's transactional-id prefix
