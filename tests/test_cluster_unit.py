"""A cluster's layout and the replication of new topics, without a broker."""
from __future__ import annotations

import dataclasses

import pytest

from hive_streams.exceptions import InfraError
from hive_streams.infra import kafka
from hive_streams.kafka.admin import replication_for
from hive_streams.settings import Settings


def test_three_replicas_two_in_sync_on_a_cluster_of_three_one_otherwise():
    assert replication_for(1) == (1, 1)
    assert replication_for(2) == (1, 1)
    assert replication_for(3) == (3, 2)
    assert replication_for(5) == (3, 2)


def test_settings_choose_replication_within_the_cluster():
    assert replication_for(3, factor=2) == (2, 1)
    assert replication_for(3, min_insync=3) == (3, 3)
    with pytest.raises(InfraError, match="needs 3 brokers"):
        replication_for(1, factor=3)
    with pytest.raises(InfraError, match="more than the replication factor"):
        replication_for(3, factor=2, min_insync=3)


def test_a_single_broker_keeps_its_files_and_ports(tmp_path):
    s = Settings(home=str(tmp_path), kafka_port=9092)
    (only,) = kafka.nodes(s)
    assert (only.dir, only.port, only.controller_port) == (tmp_path / "kafka", 9092, 9093)
    assert kafka._bootstrap(s) == "127.0.0.1:9092"


def test_a_cluster_has_a_directory_and_two_ports_per_node(tmp_path):
    s = Settings(home=str(tmp_path), kafka_port=29092, kafka_brokers=3)
    cluster = kafka.nodes(s)
    assert [(n.dir.name, n.port, n.controller_port) for n in cluster] == [
        ("node-1", 29092, 29095), ("node-2", 29093, 29096), ("node-3", 29094, 29097)]
    assert kafka._bootstrap(s) == "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"


def test_a_formatted_home_keeps_its_broker_count(tmp_path):
    s = Settings(home=str(tmp_path), kafka_brokers=3)
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "brokers").write_text("3\n")
    assert kafka.brokers(dataclasses.replace(s, kafka_brokers=0)) == 3
    with pytest.raises(InfraError, match="has 3 broker"):
        kafka._count(dataclasses.replace(s, kafka_brokers=1))


def test_a_home_formatted_before_clusters_is_one_broker(tmp_path):
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("node.id=1\n")
    assert kafka.brokers(Settings(home=str(tmp_path))) == 1
