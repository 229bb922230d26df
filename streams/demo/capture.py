"""Has Debezium captured everything committed so far? A marker row, watched on its topic.

The demo deletes an earlier run's rows before its worker starts at the end of the CDC topics
(``RECONCILER_START_FROM=latest``). Debezium may still be publishing those deletes when the
worker takes its position, and the worker would then read tens of thousands of them before
the demo's own rows. So the demo commits a marker row after the deletes and waits until the
marker is on ``<prefix>individu``: WAL order means everything before it was captured.
confluent-kafka, assigned partitions, no consumer group commits (a reader, not a member).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

__all__ = ["caught_up", "end_offsets", "wait_for_key"]


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reconciler-demo-capture",  # never joined nor committed: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "log_level": 3,
        }
    )


def end_offsets(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    """Partition → end offset now ({} when the topic does not exist yet)."""
    consumer = _consumer(bootstrap)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def caught_up(bootstrap: str, group: str, topic: str, timeout_s: float = 10.0) -> bool:
    """``group`` has committed every record of ``topic`` (faust flushes what it produced —
    changelogs included — before it commits what it read): the tools reading the changelogs
    see everything the worker did. Only asks the group's offsets; never joins it."""
    ends = end_offsets(bootstrap, topic, timeout_s)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    try:
        asked = [TopicPartition(topic, p) for p in ends]
        done = {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=timeout_s)}
    finally:
        consumer.close()
    return all(done.get(p, -1) >= end for p, end in ends.items() if end > 0)


def wait_for_key(
    bootstrap: str,
    topic: str,
    key: Mapping[str, object],
    since: Mapping[int, int],
    timeout_s: float,
) -> bool:
    """Until a record keyed ``key`` appears after ``since`` (missing partitions: from 0)."""
    deadline = time.monotonic() + timeout_s
    consumer = _consumer(bootstrap)
    try:
        assigned = False
        while time.monotonic() < deadline:
            if not assigned:
                assigned = _assign(consumer, topic, since)
                if not assigned:
                    time.sleep(0.5)  # the topic is created by Debezium's first record
                    continue
            message = consumer.poll(0.5)
            raw = None if message is None or message.error() is not None else message.key()
            if raw and json.loads(raw) == dict(key):
                return True
        return False
    finally:
        consumer.close()


def _assign(consumer: Consumer, topic: str, since: Mapping[int, int]) -> bool:
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
    except KafkaException:
        return False
    if meta is None or meta.error is not None:
        return False
    consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in meta.partitions])
    return True
