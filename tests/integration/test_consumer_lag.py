"""The worker's consumer-lag probe against the real broker: high watermark minus the group's
committed offset, per topic, over the partitions asked for; it never joins or moves the group."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams import metrics
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.settings import KafkaSettings
from streams.pipeline.observe import LagProbe
from tests.support.backends import Services

pytestmark = pytest.mark.integration


def test_lag_is_the_uncommitted_records_of_the_owned_partitions(services: Services) -> None:
    kafka = KafkaSettings(bootstrap_servers=services.bootstrap_servers)
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"lag-group-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [TopicSpec(topic, 2)])
    producer = Producer({"bootstrap.servers": services.bootstrap_servers})
    for n in range(7):
        producer.produce(topic, value=b"x", partition=0 if n < 5 else 1)
    assert producer.flush(30) == 0
    committer = Consumer(
        {"bootstrap.servers": services.bootstrap_servers, "group.id": group, "log_level": 3}
    )
    committer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    committer.close()

    probe = LagProbe(kafka, group)
    try:
        both = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        # partition 0: 5 written, 2 committed; partition 1: 2 written, nothing committed
        assert probe.measure(both) == {topic: 3 + 2}
        assert probe.measure([TopicPartition(topic, 0)]) == {topic: 3}
        assert probe.measure([]) == {}
        assert probe.publish([topic, "not-owned-here"], [TopicPartition(topic, 1)])
        assert metrics.CONSUMER_LAG.labels(topic)._value.get() == 2
        assert metrics.CONSUMER_LAG.labels("not-owned-here")._value.get() == 0
        assert metrics.LAST_LAG_CHECK._value.get() > 0
    finally:
        probe.close()
    check = Consumer({"bootstrap.servers": services.bootstrap_servers, "group.id": group})
    try:  # measuring moved nothing: the group's offset is still the one committed
        (committed,) = check.committed([TopicPartition(topic, 0)], timeout=30)
        assert committed.offset == 2
    finally:
        check.close()
