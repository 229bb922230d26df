"""Kafka adapter for everything outside faust: settings, topic administration (confluent-kafka)."""

from streams.kafka.admin import TopicError, TopicSpec, ensure_topics, partition_counts
from streams.kafka.settings import KafkaSettings, TopicNames

__all__ = [
    "KafkaSettings",
    "TopicError",
    "TopicNames",
    "TopicSpec",
    "ensure_topics",
    "partition_counts",
]
