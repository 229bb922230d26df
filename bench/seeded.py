"""The worker's tables for a loaded year, computed outside the worker and written to its
changelog topics, so that a worker can be measured holding millions of enrolments without
first streaming them through (at the measured ~320 enrolments/s a 3 M-row load is hours).

The state is what the worker itself would write, computed by the worker's own code on the
same input: the CDC records Debezium published for the load go through
:class:`StudentView` (student table, facts), the facts through :class:`CourseView` (desired
state, course records), each course is adopted and planned with :func:`plan` and its
commands folded back as :class:`CommandsApplied` (ledger), exactly as the results agent
folds what the applier published. Only faust and Kafka are left out; the entries are then
produced to each table's changelog partition — the partition of the record the worker would
have been processing when it wrote them: the CDC record's for a student, the course-keyed
topic's (murmur2 of the course, aiokafka's default partitioner) for the course tables.

Moodle is not written: the ledger says every enrolment was applied, so a worker started on
this state plans no call (the benchmark checks that it makes none).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka.partitioner import murmur2
from confluent_kafka import Message, Producer

from schemas.course_events import AppliedCommand, CommandsApplied, CourseAdopted, FactsChanged
from streams.domain.mapping import build_mapping
from streams.domain.plan import plan
from streams.kafka.settings import KafkaSettings
from streams.pipeline.handlers import CourseView, MappingHolder, StudentView
from streams.pipeline.settings import WorkerSettings
from streams.pipeline.state import SEP, CourseTables
from streams.pipeline.topics import changelog

__all__ = ["SeededState", "seed_state"]

_SEP = SEP.encode()


class CourseGrouped:
    """A table as the handlers use it (``get``/``[]=``/``del``, prefix scans through the
    store interface of :func:`streams.pipeline.state.scan_prefix`), its entries grouped by
    the course their key starts with, so a course's scan does not walk millions of keys."""

    def __init__(self) -> None:
        self.courses: dict[bytes, dict[bytes, bytes]] = {}
        self.data = self  # the "store": scan_prefix and get_raw look for it

    @staticmethod
    def _course(key: bytes) -> bytes:
        return key.split(_SEP, 1)[0]

    def _dbs_for_actives(self) -> list[CourseGrouped]:
        return [self]

    def get(self, key: bytes, default: Any = None) -> Any:
        return self.courses.get(self._course(key), {}).get(key, default)

    def __getitem__(self, key: bytes) -> bytes:
        return self.courses[self._course(key)][key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.courses.setdefault(self._course(key), {})[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self.courses[self._course(key)][key]

    def items(self, from_key: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        entries = self.courses.get(self._course(from_key), {})
        return iter(sorted((k, v) for k, v in entries.items() if k >= from_key))

    def keys(self) -> list[bytes]:
        return [k for entries in self.courses.values() for k in entries]

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.courses.values())


class _Signals:
    """The applier's side of the course view: nothing to schedule here."""

    def mark(self, course: str, users: Iterable[str] | None = None) -> None:
        pass

    def folded(self, course: str) -> None:
        pass

    def sweep(self) -> int:
        return 0

    writer = "seeded"


class _Students(dict[bytes, bytes]):
    """The student table, remembering the CDC partition each student was written from."""

    def __init__(self) -> None:
        super().__init__()
        self.partition = 0
        self.partitions: dict[bytes, int] = {}

    def __setitem__(self, key: bytes, value: bytes) -> None:
        super().__setitem__(key, value)
        self.partitions[key] = self.partition


@dataclass
class SeededState:
    students: int
    facts: int
    desired: int
    ledger: int
    courses: int
    rejected: int
    records_produced: int
    seconds_computing: float
    seconds_producing: float


def seed_state(
    records: Iterable[Message],
    worker: WorkerSettings,
    kafka: KafkaSettings,
    moodle_user_id: Any,
    moodle_course_id: Any,
) -> SeededState:
    """Fold ``records`` (CDC) as the worker would and write its tables' changelogs."""
    t0 = time.monotonic()
    students = _Students()
    grouped = [cast(Any, CourseGrouped()) for _ in range(4)]  # the MutableMapping a table is
    tables = CourseTables(*grouped)
    view = CourseView(tables, _Signals())
    facts = 0
    rejected: list[Any] = []

    def emit(event: FactsChanged) -> None:
        nonlocal facts
        facts += len(event.changes)
        view.on_event(event)

    mapping = MappingHolder(
        build_mapping((), worker.course_template, worker.stage_template, worker.default_role)
    )
    students_view = StudentView(students, worker.fold_policy(), mapping, emit, rejected.append)
    for msg in records:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        students.partition = partition
        students_view.on_record(topic, partition, offset, msg.key(), msg.value())
    now = datetime.now(UTC)
    policy = worker.plan_policy()
    desired_table, ledger_table = tables.desired_table, tables.ledger_table
    assert isinstance(desired_table, CourseGrouped) and isinstance(ledger_table, CourseGrouped)
    courses = [key.decode() for key in list(tables.courses_table.keys())]
    for course in courses:
        course_id = moodle_course_id(course)
        view.on_event(CourseAdopted(course=course, moodle_course_id=course_id, at=now))
        p = plan(tables.desired(course), tables.ledger(course), policy, now)
        applied = tuple(AppliedCommand(c, moodle_user_id(c.user)) for c in p.commands)
        view.on_event(
            CommandsApplied(course=course, moodle_course_id=course_id, applied=applied, at=now)
        )
    computed = time.monotonic() - t0
    t1 = time.monotonic()
    parts = worker.partitions
    producer = Producer(
        {
            **kafka.librdkafka(),
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    produced = 0

    def produce(topic: str, key: bytes, value: bytes, partition: int) -> None:
        nonlocal produced
        while True:
            try:
                producer.produce(topic, value=value, key=key, partition=partition)
                break
            except BufferError:
                producer.poll(0.1)
        produced += 1
        if produced % 100_000 == 0:
            producer.poll(0)

    app = worker.app_id
    for key, value in students.items():
        produce(changelog(app, "students"), key, value, students.partitions[key])
    for name, table in (
        ("desired", desired_table),
        ("ledger", ledger_table),
        ("courses", tables.courses_table),
    ):
        assert isinstance(table, CourseGrouped)
        for course, entries in table.courses.items():
            partition = (murmur2(course) & 0x7FFFFFFF) % parts
            for key, value in entries.items():
                produce(changelog(app, name), key, value, partition)
    left = producer.flush(600)
    if left:
        raise SystemExit(f"{left} changelog records not delivered within 10 min")
    return SeededState(
        students=len(students),
        facts=facts,
        desired=len(desired_table),
        ledger=len(ledger_table),
        courses=len(courses),
        rejected=len(rejected),
        records_produced=produced,
        seconds_computing=round(computed, 1),
        seconds_producing=round(time.monotonic() - t1, 1),
    )
