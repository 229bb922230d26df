"""The worker's Kafka client (aiokafka, under faust) reads compressed record batches.

Kafka Connect's producer or the broker may compress CDC topics (``compression.type``); a
codec aiokafka cannot decode crashes the worker's consumer thread, so every one a producer
may choose is read back here from the real broker.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer

from tests.support.backends import Services

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_aiokafka_reads_every_compression_a_producer_may_use(
    services: Services, codec: str
) -> None:
    topic = f"compressed-{codec}-{uuid.uuid4().hex[:8]}"
    producer = Producer(
        {"bootstrap.servers": services.bootstrap_servers, "compression.type": codec}
    )
    sent = [(f'{{"cod_ind": {i}}}'.encode(), b'{"op": "c"}' * (i + 1)) for i in range(50)]
    for key, value in sent:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=services.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        got: list[tuple[bytes | None, bytes | None]] = []
        while len(got) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"{codec}: nothing read within 10 s ({len(got)} of {len(sent)})"
            for records in batches.values():
                got.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    assert sorted(got) == sorted(sent)  # the topic may have several partitions
