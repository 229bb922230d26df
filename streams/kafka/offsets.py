"""Where a new consumer group starts on given topics, decided before faust starts.

faust has one ``auto_offset_reset`` for every topic it reads, its own internal ones
included, and "latest" there would skip results the worker publishes to itself before its
first fetch. So the worker always resets to "earliest", and a group that should start at
the current end of the CDC topics (``RECONCILER_START_FROM=latest``) gets those end offsets
committed here first — once: a group that already committed keeps its positions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.kafka.settings import KafkaSettings

__all__ = ["commit_end_offsets_if_new"]


def commit_end_offsets_if_new(
    settings: KafkaSettings, group: str, topics: Iterable[str], timeout_s: float = 30.0
) -> int:
    """Commit each partition's high watermark for ``group`` where it has no committed offset;
    returns how many partitions were set."""
    consumer = Consumer(
        {**settings.librdkafka(), "group.id": group, "enable.auto.commit": False, "log_level": 3}
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in (consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions or {})
        ]
        committed = consumer.committed(partitions, timeout=timeout_s)
        fresh = [tp for tp in committed if tp.offset < 0]
        if not fresh:
            return 0
        ends = [
            TopicPartition(tp.topic, tp.partition, _high(consumer, tp, timeout_s)) for tp in fresh
        ]
        consumer.commit(offsets=ends, asynchronous=False)
        return len(ends)
    finally:
        consumer.close()


def _high(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> int:
    """High watermark, waiting out a topic created a moment ago (no leader elected yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(consumer.get_watermark_offsets(tp, timeout=timeout_s)[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
