"""A confluent-kafka producer for the command-line tools: keyed like the worker, delivered or fails.

Keys are hashed with murmur2 (``murmur2_random``), as the Java clients and aiokafka (faust) do:
librdkafka's own default (CRC32) would put a course's command on another partition than the
worker's own records for that course.
"""

from __future__ import annotations

from types import TracebackType

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.kafka.settings import KafkaSettings

__all__ = ["DeliveryError", "ToolProducer"]


class DeliveryError(RuntimeError):
    """A record was not acknowledged by Kafka."""


class ToolProducer:
    def __init__(self, settings: KafkaSettings) -> None:
        self._producer = Producer(
            {
                **settings.librdkafka(),
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
                "log_level": 3,
            }
        )
        self._errors: list[str] = []
        self.sent = 0

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        try:
            self._produce(topic, key, value, partition)
        except BufferError:
            self._producer.flush(30)
            self._produce(topic, key, value, partition)
        except KafkaException as exc:
            raise DeliveryError(f"{topic}: {exc}") from exc
        self._producer.poll(0)

    def _produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> None:
        if partition is None:
            self._producer.produce(topic, key=key, value=value, on_delivery=self._done)
        else:
            self._producer.produce(
                topic, key=key, value=value, partition=partition, on_delivery=self._done
            )

    def partitions(self, topic: str, timeout_s: float = 10.0) -> list[int]:
        meta = self._producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise DeliveryError(f"topic {topic!r} does not exist (has a worker started once?)")
        return sorted(meta.partitions)

    def _done(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error.str()}")
        else:
            self.sent += 1

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every acknowledgement; raise if any record failed or is still queued."""
        left = self._producer.flush(timeout_s)
        if left:
            raise DeliveryError(f"{left} record(s) not delivered within {timeout_s:.0f}s")
        if self._errors:
            raise DeliveryError("; ".join(self._errors[:5]))

    def __enter__(self) -> ToolProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
