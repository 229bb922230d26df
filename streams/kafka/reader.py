"""Reading retained history: assigned partitions, a time window, no consumer group, no commits.

What the audit, replay and diff tools share (ops.md B3): a window ``[since, until]`` in
Kafka record time is resolved per partition with ``offsets_for_times`` into an offset range
``[start, end)``, next to the partition's watermarks, so the tools can say *which* records
they read and whether the window reaches back before what retention kept. The consumer is
``assign()``-ed, never subscribed: it joins no group, moves no one's offsets, and commits
nothing (a random ``group.id`` only because librdkafka requires one).

* :func:`partition_of` — the partition a key lands on (murmur2, as faust, aiokafka and the
  Java clients place it), so a course's records are read from one partition only.
* :class:`HistoryReader` — :meth:`~HistoryReader.resolve` the window,
  :meth:`~HistoryReader.batches` of messages inside it, :meth:`~HistoryReader.topic_info`
  (cleanup policy, retention), :meth:`~HistoryReader.first_timestamp` of what is retained.

A window is *expired* on a partition when the records before it are gone: the low watermark
is above zero and the window starts at or before it (retention deleted what it asked for).
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.kafka.settings import KafkaSettings

__all__ = [
    "HistoryReader",
    "PartitionSpan",
    "ReadError",
    "TopicInfo",
    "partition_of",
    "read_range",
]


class ReadError(RuntimeError):
    """Kafka unreachable, or a topic that does not exist."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition murmur2 keying puts ``key`` on (Kafka's DefaultPartitioner)."""
    from aiokafka.partitioner import murmur2

    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: int
    cleanup_policy: str | None
    retention_ms: int | None  # -1: forever


@dataclass(frozen=True, slots=True)
class PartitionSpan:
    """One partition's part of a window: read offsets ``[start, end)``."""

    topic: str
    partition: int
    low: int  # low watermark: the oldest offset retention kept
    high: int  # high watermark when resolved
    start: int
    end: int

    @property
    def expired(self) -> bool:
        """Records of the window may have been deleted: some were, and the window starts at or
        before the oldest one kept."""
        return self.low > 0 and self.start <= self.low

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


_Progress = Callable[[int], None]


class HistoryReader:
    """A confluent-kafka consumer that reads windows of history and never commits."""

    def __init__(self, settings: KafkaSettings, timeout_s: float = 15.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._consumer = Consumer(
            {
                **settings.librdkafka(),
                "group.id": f"reconciler-reader-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.max.bytes": 64 * 2**20,
                "max.partition.fetch.bytes": 16 * 2**20,
                "queued.max.messages.kbytes": 256 * 1024,
                "log_level": 3,
            }
        )

    # -- metadata ------------------------------------------------------------------------------
    def partitions(self, topic: str) -> list[int]:
        try:
            meta = self._consumer.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise ReadError(f"Kafka at {self.settings.bootstrap_servers}: {exc}") from exc
        if meta is None or meta.error is not None or not meta.partitions:
            raise ReadError(f"topic {topic!r} does not exist")
        return sorted(meta.partitions)

    def topic_info(self, topic: str) -> TopicInfo:
        """Partition count, cleanup policy and retention (None when the broker will not say)."""
        count = len(self.partitions(topic))
        policy: str | None = None
        retention: int | None = None
        try:
            from confluent_kafka.admin import (  # type: ignore[attr-defined]
                AdminClient,
                ConfigResource,
            )

            admin = AdminClient({**self.settings.librdkafka(), "log_level": 3})
            resource = ConfigResource("topic", topic)
            entries = admin.describe_configs([resource])[resource].result(timeout=self.timeout_s)
            policy = entries["cleanup.policy"].value
            retention = int(entries["retention.ms"].value)
        except (KafkaException, KeyError, ValueError):
            pass
        return TopicInfo(topic, count, policy, retention)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=self.timeout_s, cached=False
            )
        except KafkaException as exc:
            raise ReadError(f"{topic}[{partition}]: {exc}") from exc
        return int(low), int(high)

    # -- windows -------------------------------------------------------------------------------
    def resolve(
        self,
        topic: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        partitions: Iterable[int] | None = None,
    ) -> list[PartitionSpan]:
        """Offsets of the window ``[since_ms, until_ms]`` (Kafka record time, inclusive) on each
        partition (all of the topic's unless given); ``None`` is open-ended."""
        wanted = sorted(partitions) if partitions is not None else self.partitions(topic)
        marks = {p: self.watermarks(topic, p) for p in wanted}
        starts = self._offsets_at(topic, wanted, since_ms, marks, default="low")
        ends = self._offsets_at(
            topic, wanted, None if until_ms is None else until_ms + 1, marks, default="high"
        )
        return [
            PartitionSpan(topic, p, marks[p][0], marks[p][1], starts[p], max(starts[p], ends[p]))
            for p in wanted
        ]

    def _offsets_at(
        self,
        topic: str,
        partitions: Sequence[int],
        at_ms: int | None,
        marks: dict[int, tuple[int, int]],
        default: str,
    ) -> dict[int, int]:
        if at_ms is None:
            return {p: marks[p][0 if default == "low" else 1] for p in partitions}
        query = [TopicPartition(topic, p, at_ms) for p in partitions]
        try:
            found = self._consumer.offsets_for_times(query, timeout=self.timeout_s)
        except KafkaException as exc:
            raise ReadError(f"{topic}: offsets for time {at_ms}: {exc}") from exc
        # -1: no record at or after that time, i.e. the window reaches the end
        return {
            tp.partition: (tp.offset if tp.offset >= 0 else marks[tp.partition][1]) for tp in found
        }

    def first_timestamp(self, topic: str, partition: int, offset: int) -> int | None:
        """Kafka time of the record at ``offset`` (the oldest retained one, say)."""
        for batch in self.batches(
            [PartitionSpan(topic, partition, 0, offset + 1, offset, offset + 1)]
        ):
            for message in batch:
                return _timestamp(message)
        return None

    # -- reading -------------------------------------------------------------------------------
    def batches(
        self,
        spans: Sequence[PartitionSpan],
        progress: _Progress | None = None,
        size: int = 5000,
    ) -> Iterator[list[Message]]:
        """The messages of every span, in offset order per partition, a batch at a time;
        ``progress(n)`` after each batch with the number of offsets it covered. The loop is
        the audit's hot path (a million records): one call of ``progress`` per batch."""
        todo = {(s.topic, s.partition): s for s in spans if s.size > 0}
        if not todo:
            return
        assignment = [TopicPartition(t, p, s.start) for (t, p), s in todo.items()]
        self._consumer.assign(assignment)
        self._consumer.resume(assignment)  # librdkafka keeps a partition paused across assigns
        position = {key: s.start for key, s in todo.items()}
        idle_deadline = time.monotonic() + self.timeout_s
        try:
            while todo:
                messages = self._consumer.consume(size, 0.5)
                if not messages:
                    if time.monotonic() > idle_deadline:
                        raise ReadError(f"no record within {self.timeout_s:.0f}s: {_left(todo)}")
                    continue
                idle_deadline = time.monotonic() + self.timeout_s
                batch: list[Message] = []
                covered = 0  # offsets passed in this batch, for ``progress`` (once a batch)
                for message in messages:
                    key = (message.topic(), message.partition())
                    span = todo.get(key)  # type: ignore[arg-type]
                    if span is None:
                        continue
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise ReadError(f"{key[0]}[{key[1]}]: {error.str()}")
                        covered += self._finish(todo, position, key, span.end)
                        continue
                    offset: int = message.offset()  # type: ignore[assignment]
                    if offset >= span.end:
                        covered += self._finish(todo, position, key, span.end)
                        continue
                    batch.append(message)
                    covered += offset + 1 - position[key]  # type: ignore[index]
                    position[key] = offset + 1  # type: ignore[index]
                    if offset + 1 >= span.end:
                        self._finish(todo, position, key, span.end)
                if progress is not None and covered:
                    progress(covered)
                if batch:
                    yield batch
        finally:
            self._consumer.unassign()

    def _finish(
        self,
        todo: dict[tuple[str, int], PartitionSpan],
        position: dict[tuple[str, int], int],
        key: Any,
        end: int,
    ) -> int:
        """Stop reading a partition; returns the offsets skipped to its end (compaction,
        transaction markers), for the progress count."""
        span = todo.pop(key, None)
        if span is None:
            return 0
        self._consumer.pause([TopicPartition(span.topic, span.partition)])
        return max(0, end - position[key])

    def merged(
        self, spans: Sequence[PartitionSpan], progress: _Progress | None = None
    ) -> Iterator[Message]:
        """The messages of every span in Kafka time order across partitions and topics (each
        partition is already in order: a k-way merge of their heads), for replays that must
        see changes in the order they happened."""
        heads: dict[tuple[str, int], deque[Message]] = {
            (s.topic, s.partition): deque() for s in spans if s.size > 0
        }
        done: set[tuple[str, int]] = set()
        ends = {(s.topic, s.partition): s.end for s in spans}
        heap: list[tuple[int, str, int, int]] = []

        def ready() -> bool:
            return all(heads[k] or k in done for k in heads)

        def push(key: tuple[str, int]) -> None:
            message = heads[key][0]
            heapq.heappush(
                heap, (_timestamp(message) or 0, key[0], key[1], int(message.offset() or 0))
            )

        for batch in self.batches(spans, progress):
            for message in batch:
                key = (message.topic(), message.partition())
                queue = heads[key]  # type: ignore[index]
                queue.append(message)
                if len(queue) == 1:
                    push(key)  # type: ignore[arg-type]
                if int(message.offset() or 0) + 1 >= ends[key]:  # type: ignore[index]
                    done.add(key)  # type: ignore[arg-type]
            while heap and ready():
                yield from self._pop(heap, heads, push)
        done.update(heads)
        while heap:
            yield from self._pop(heap, heads, push)

    @staticmethod
    def _pop(
        heap: list[tuple[int, str, int, int]],
        heads: dict[tuple[str, int], deque[Message]],
        push: Callable[[tuple[str, int]], None],
    ) -> Iterator[Message]:
        _, topic, partition, _ = heapq.heappop(heap)
        queue = heads[(topic, partition)]
        yield queue.popleft()
        if queue:
            push((topic, partition))

    def latest(
        self,
        topic: str,
        partitions: Iterable[int] | None = None,
        keep: Callable[[bytes], bool] | None = None,
        progress: _Progress | None = None,
    ) -> dict[bytes, bytes]:
        """A compacted topic's state: the last value of each key (a tombstone deletes it),
        read to the current end of the partitions; ``keep`` filters keys."""
        state: dict[bytes, bytes] = {}
        for batch in self.batches(self.resolve(topic, partitions=partitions), progress):
            for message in batch:
                key = message.key()
                if key is None or (keep is not None and not keep(key)):
                    continue
                value = message.value()
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
        return state

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _timestamp(message: Message) -> int | None:
    kind, value = message.timestamp()
    return int(value) if kind != 0 else None  # TIMESTAMP_NOT_AVAILABLE


def _left(todo: dict[tuple[str, int], PartitionSpan]) -> str:
    return ", ".join(f"{t}[{p}] up to {s.end}" for (t, p), s in sorted(todo.items()))


def read_range(
    settings: KafkaSettings, topic: str, partition: int, start: int, end: int
) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of the records of one partition in ``[start, end)`` that are still
    retained (blocking: call it in a thread from async code)."""
    with HistoryReader(settings) as reader:
        low, high = reader.watermarks(topic, partition)
        span = PartitionSpan(topic, partition, low, high, max(start, low), min(end, high))
        return [
            (m.offset(), m.key(), m.value())  # type: ignore[misc]
            # as many as expected: librdkafka's consume() then returns as soon as they came
            for batch in reader.batches([span], size=max(1, span.size))
            for m in batch
        ]
