"""Test wiring of the pure pieces, as the agents will wire them: decode → fold → route → desired."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from streams.domain.changes import RowChange, Tombstone
from streams.domain.desired import CourseDesired, apply_changes, empty_desired, route
from streams.domain.fold import fold
from streams.domain.ingest import decode
from streams.domain.mapping import CourseMapping, build_mapping
from streams.domain.policy import FoldPolicy
from streams.domain.student import StudentState, empty_student
from tests.unit.domain.apogee import Record

T0 = datetime(2026, 9, 1, 8, 0)


class Pipeline:
    """Student states keyed by COD_IND, desired states keyed by course."""

    def __init__(self, policy: FoldPolicy | None = None, mapping: CourseMapping | None = None):
        self.policy = policy or FoldPolicy()
        self.mapping = mapping or build_mapping(())
        self.students: dict[int, StudentState] = {}
        self.courses: dict[str, CourseDesired] = {}
        self.skipped = 0

    def feed(self, records: Iterable[Record], now: datetime = T0) -> None:
        for record in records:
            decoded = decode(record.topic, record.value)
            assert isinstance(decoded, tuple | Tombstone), decoded
            for change in decoded if isinstance(decoded, tuple) else (decoded,):
                self.fold(change, record.cod_ind, now)

    def fold(self, change: RowChange | Tombstone, cod_ind: int, now: datetime) -> None:
        state = self.students.get(cod_ind) or empty_student(cod_ind)
        new_state, effects = fold(state, change, self.policy)
        self.skipped += new_state is state and not isinstance(change, Tombstone)
        self.students[cod_ind] = new_state
        for course_change in route(effects, self.mapping):
            course = course_change.course
            desired = self.courses.get(course) or empty_desired(course)
            self.courses[course] = apply_changes(desired, (course_change,), now)

    def desired(self) -> set[tuple[str, str, str]]:
        return {
            (course, entry.user, entry.role)
            for course, desired in self.courses.items()
            for entry in desired.entries.values()
            if entry.present
        }
