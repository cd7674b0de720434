"""Every producer and every partition check picks Kafka's default partition for a key."""
from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from hive_streams.topics import murmur2, partition_for, partitioner


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(data):
    assert murmur2(data) == reference(data)


@given(st.binary(min_size=0, max_size=64), st.integers(min_value=1, max_value=64))
def test_the_partitioner_picks_what_the_default_one_picks(key, count):
    partitions = list(range(count))
    assert partitioner(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)
    assert partition_for(key, count) == partitioner(key, partitions, partitions)


def test_known_keys_land_where_the_java_client_puts_them():
    # values of Kafka's own Utils.murmur2 test vectors (UtilsTest.testMurmur2), as unsigned
    assert murmur2(b"21") & 0xFFFFFFFF == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == -790332482 & 0xFFFFFFFF
    assert murmur2(b"") & 0xFFFFFFFF == 275646681


def test_a_record_without_a_key_goes_to_an_available_partition():
    assert partitioner(None, [0, 1, 2, 3], [2]) == 2
