"""Course-mapping rules from their compacted topic: read whole at start, then followed.

Every worker needs every rule (a student of any partition may follow any element), so this
is a plain confluent-kafka consumer over all partitions, with no group and no commits: the
topic is small and compacted, and reading it from the beginning is the state.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from schemas.deadletter import DeadLetterReason, DeadLetterRecord
from schemas.mapping import CourseMappingRule
from streams.domain.ingest import KafkaRef
from streams.kafka.settings import KafkaSettings
from streams.pipeline.handlers import dead_letter

log = logging.getLogger(__name__)

__all__ = ["MappingFeed"]

Reject = Callable[[DeadLetterRecord], None]


class MappingFeed:
    """The current rules by ``rule_id``; :meth:`poll` applies what arrived since."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self.rules: dict[str, CourseMappingRule] = {}
        self._consumer = Consumer(
            {
                **kafka.librdkafka(),
                "group.id": f"reconciler-mapping-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 3,
            }
        )

    def load(self, reject: Reject, timeout_s: float = 30.0) -> dict[str, CourseMappingRule]:
        """Read the topic to its end (the rules in force now)."""
        try:
            meta = self._consumer.list_topics(self.topic, timeout=timeout_s).topics.get(self.topic)
        except KafkaException as exc:
            raise RuntimeError(f"mapping topic {self.topic!r} unreadable: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            return self.rules
        parts = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        ends = {
            p.partition: self._consumer.get_watermark_offsets(p, timeout=timeout_s)[1]
            for p in parts
        }
        self._consumer.assign(parts)
        position = {p: 0 for p in ends}
        while any(position[p] < ends[p] for p in ends):
            msg = self._consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is None:
                self._take(msg, reject)
                position[int(msg.partition() or 0)] = int(msg.offset() or 0) + 1
        return self.rules

    def poll(self, reject: Reject) -> bool:
        """Apply records that arrived since; True when the rules changed. Never blocks."""
        changed = False
        while (msg := self._consumer.poll(0)) is not None:
            if msg.error() is None:
                changed |= self._take(msg, reject)
        return changed

    def close(self) -> None:
        self._consumer.close()

    def _take(self, msg: object, reject: Reject) -> bool:
        key_raw: bytes | None = msg.key()  # type: ignore[attr-defined]
        value: bytes | None = msg.value()  # type: ignore[attr-defined]
        key = key_raw.decode("utf-8", "replace") if key_raw else ""
        if value is None:
            return self.rules.pop(key, None) is not None
        try:
            rule = CourseMappingRule.model_validate_json(value)
        except ValidationError as exc:
            where = KafkaRef(self.topic, msg.partition(), msg.offset())  # type: ignore[attr-defined]
            log.error("invalid mapping rule at %s: %s", where, exc)
            reject(
                dead_letter(DeadLetterReason.INVALID_MAPPING_RULE, str(exc), where, key_raw, value)
            )
            return False
        if self.rules.get(rule.rule_id) == rule:
            return False
        self.rules[rule.rule_id] = rule
        return True
