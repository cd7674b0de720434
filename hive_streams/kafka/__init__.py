"""The one Kafka adapter: who connects (roles, ACLs), client construction, command routing, partition readers, topics, the clock."""
from .access import KafkaAccess, access_for
from .admin import ensure_topics
from .clients import consumer, producer, stop_quietly, transactional_producer
from .clock import now_ms
from .reader import read_to_end
from .routing import CommandSender, command_topic

__all__ = ["KafkaAccess", "access_for", "ensure_topics", "consumer", "producer", "stop_quietly", "transactional_producer", "now_ms",
           "read_to_end", "CommandSender", "command_topic"]
