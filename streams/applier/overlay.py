"""Results published but not yet folded into the ledger, seen by the applier meanwhile.

The applier publishes what Moodle accepted (and what it found when it adopted a course) to
the course-results topic; the results agent folds that into the ledger and course tables.
Under a burst that fold waits behind the agents' backlog, and a course kept unplanned until
then left Moodle idle while the worker chewed through it. So the applier keeps what it
published here and plans against *ledger + overlay*; an entry leaves the overlay once every
result published for its course has been folded. Both sides build entries with the same
functions (:func:`foreign_entry`, :func:`applied_entry`), so the overlay is exactly what the
table will hold. A crash loses the overlay only: the results are on their topic, and a plan
against the older ledger re-sends full tuples, which Moodle ignores.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field, replace
from datetime import datetime

from schemas.commands import MoodleCommand
from schemas.course_events import CourseMeta, ForeignEnrolment
from schemas.enrolment import EnrolmentStatus, LedgerEntry
from streams.domain import ledger as ledger_ops
from streams.domain.ledger import CourseLedger

__all__ = ["Overlay", "applied_entry", "foreign_entry"]


def foreign_entry(
    course: str, found: ForeignEnrolment, moodle_course_id: int, at: datetime
) -> LedgerEntry:
    """An enrolment found in Moodle that the reconciler did not make: never touched."""
    status = EnrolmentStatus.SUSPENDED if found.enrolment.suspend else EnrolmentStatus.ACTIVE
    return LedgerEntry(
        course,
        found.user,
        found.enrolment,
        status,
        False,
        at,
        None,
        found.moodle_user_id,
        moodle_course_id,
    )


def applied_entry(
    old: LedgerEntry | None,
    command: MoodleCommand,
    at: datetime,
    moodle_user_id: int | None,
    moodle_course_id: int,
) -> LedgerEntry:
    """The ledger entry after Moodle accepted ``command`` (ValueError if ``old`` is foreign)."""
    before = CourseLedger(command.course, {command.user: old} if old else {})
    entry = ledger_ops.apply(before, command, at).entries[command.user]
    return replace(
        entry,
        moodle_user_id=moodle_user_id or entry.moodle_user_id,
        moodle_course_id=moodle_course_id,
    )


@dataclass
class _Course:
    outstanding: int = 0
    meta: CourseMeta | None = None
    entries: dict[str, LedgerEntry] = field(default_factory=dict)


class Overlay:
    def __init__(self) -> None:
        self._courses: dict[str, _Course] = {}

    def adopted(self, meta: CourseMeta, foreign: list[LedgerEntry]) -> None:
        pending = self._courses.setdefault(meta.course, _Course())
        pending.outstanding += 1
        pending.meta = meta
        for entry in foreign:
            pending.entries.setdefault(entry.user, entry)

    def applied(self, course: str, entries: list[LedgerEntry]) -> None:
        pending = self._courses.setdefault(course, _Course())
        pending.outstanding += 1
        for entry in entries:
            pending.entries[entry.user] = entry

    def folded(self, course: str) -> None:
        """One result of ``course`` reached the tables (possibly one of an earlier run)."""
        pending = self._courses.get(course)
        if pending is None:
            return
        pending.outstanding -= 1
        if pending.outstanding <= 0:
            del self._courses[course]

    def meta(self, course: str, stored: CourseMeta | None) -> CourseMeta | None:
        pending = self._courses.get(course)
        if pending is None or pending.meta is None:
            return stored
        if stored is None:
            return pending.meta
        return replace(
            stored,
            moodle_course_id=pending.meta.moodle_course_id,
            adopted_at=pending.meta.adopted_at,
        )

    def ledger(self, stored: CourseLedger, users: Set[str] | None = None) -> CourseLedger:
        """``stored`` with the pending entries on top (only those of ``users`` if given)."""
        pending = self._courses.get(stored.course)
        if pending is None or not pending.entries:
            return stored
        extra = pending.entries
        if users is not None:
            extra = {u: e for u, e in extra.items() if u in users}
        return CourseLedger(stored.course, {**stored.entries, **extra})

    def clear(self) -> None:
        self._courses.clear()

    def __len__(self) -> int:
        return len(self._courses)
