"""Reading topics in tests: assigned partitions, no group commits, deadlines."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: Any
    value: Any


def _decode(raw: bytes | None) -> Any:
    """JSON when it is JSON (Debezium, the reconciler's records), else the text (plain keys)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "backslashreplace")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark of each partition (where a reader starting "now" begins)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return {}
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Whether ``group`` has committed every record of ``topics`` written so far."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        ends = {
            (topic, p): end
            for topic in topics
            for p, end in end_offsets(bootstrap, topic).items()
            if end > 0
        }
        committed = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
        return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in committed)
    finally:
        consumer.close()


def commit_ends(bootstrap: str, group: str, topics: list[str]) -> int:
    """Commit the end of every partition of ``topics`` for ``group`` (which must have no
    member): the group will start after every record written so far. Returns partitions."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        ends = [
            TopicPartition(topic, p, end)
            for topic in topics
            for p, end in end_offsets(bootstrap, topic).items()
        ]
        consumer.commit(offsets=ends, asynchronous=False)
        return len(ends)
    finally:
        consumer.close()


def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Record]], bool],
    start: dict[int, int] | None = None,
    timeout_s: float = 60.0,
) -> list[Record]:
    """Read ``topic`` from ``start`` (default: beginning) until ``done(records)`` or the deadline.

    Raises AssertionError with what was seen when the deadline passes.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        partitions = _wait_partitions(consumer, topic, deadline)
        consumer.assign([TopicPartition(topic, p, (start or {}).get(p, 0)) for p in partitions])
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                records.append(
                    Record(
                        msg.topic(),
                        msg.partition(),
                        msg.offset(),
                        _decode(msg.key()),
                        _decode(msg.value()),
                    )
                )
            if done(records):
                return records
    finally:
        consumer.close()
    last = [
        (r.key, r.value.get("op") if isinstance(r.value, dict) else r.value) for r in records[-10:]
    ]
    raise AssertionError(
        f"{topic}: condition not met within {timeout_s}s; saw {len(records)} records, last: {last}"
    )


def _wait_partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    while time.monotonic() < deadline:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        time.sleep(0.5)
    raise AssertionError(f"topic {topic} did not appear")


def read_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Every record on ``topic`` now: read until each partition reaches its high watermark."""
    ends = end_offsets(bootstrap, topic)
    if not any(ends.values()):
        return []
    reached: dict[int, int] = {}

    def complete(records: list[Record]) -> bool:
        for r in records[len(reached_log) :]:
            reached[r.partition] = r.offset + 1
        reached_log[:] = records
        return all(reached.get(p, 0) >= end for p, end in ends.items() if end)

    reached_log: list[Record] = []
    return read_until(bootstrap, topic, complete, timeout_s=timeout_s)
