"""Topics the project owns: created with explicit partitions, retention and cleanup policy.

Faust would declare its changelog topics itself with broker defaults; creating them first,
with the settings written here, keeps retention and compaction a decision of the project.
An existing topic is left as it is, but a partition count that differs from the one the
co-partitioned tables need is an error that says which topic and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.kafka.settings import KafkaSettings

__all__ = ["DAY_MS", "TopicError", "TopicSpec", "ensure_topics", "partition_counts"]

DAY_MS = 86_400_000


class TopicError(RuntimeError):
    """A topic is missing, cannot be created, or has the wrong number of partitions."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    must_match: bool = True  # partition count must equal ``partitions`` (co-partitioned)
    create: bool = True  # False: another system (Debezium) creates it; only checked

    @classmethod
    def history(cls, name: str, partitions: int, days: int, **config: str) -> TopicSpec:
        """Delete-based retention: history kept for audits and replays (never compacted)."""
        conf = {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS), **config}
        return cls(name, partitions, conf)

    @classmethod
    def compacted(cls, name: str, partitions: int, **config: str) -> TopicSpec:
        """Latest value per key (tables' changelogs, mapping rules)."""
        conf = {"cleanup.policy": "compact", "segment.ms": str(DAY_MS), **config}
        return cls(name, partitions, conf)


def _admin(settings: KafkaSettings) -> AdminClient:
    return AdminClient({**settings.librdkafka(), "log_level": 3})


def partition_counts(settings: KafkaSettings, timeout_s: float = 10.0) -> dict[str, int]:
    """Every topic of the cluster and its partition count."""
    try:
        meta = _admin(settings).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TopicError(f"Kafka at {settings.bootstrap_servers} unreachable: {exc}") from exc
    return {name: len(t.partitions) for name, t in meta.topics.items() if t.error is None}


def ensure_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics; check the partition count of the others. Returns created."""
    specs = list(specs)
    existing = partition_counts(settings, timeout_s)
    for spec in specs:
        count = existing.get(spec.name)
        if count is None and not spec.create:
            raise TopicError(
                f"topic {spec.name!r} does not exist yet (it is created by its producer, "
                "e.g. Debezium at its first snapshot); is the connector running?"
            )
        if count is not None and spec.must_match and count != spec.partitions:
            raise TopicError(
                f"topic {spec.name!r} has {count} partitions, the pipeline is configured for "
                f"{spec.partitions} (RECONCILER_PARTITIONS); co-partitioned topics and tables "
                "must agree: change the setting or recreate the topic"
            )
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    admin = _admin(settings)  # must outlive the futures
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, -1, config=s.config) for s in missing],
        operation_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another worker won the race
                raise TopicError(f"cannot create topic {name!r}: {exc}") from exc
    return created
