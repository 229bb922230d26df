"""The applied ledger per course: what this reconciler did in Moodle, and what it found there.

``apply`` records the effect of a command Moodle accepted; ``record_foreign`` notes an
enrolment that exists in Moodle but is not ours, so the plan will never touch it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry

__all__ = [
    "CourseLedger",
    "apply",
    "apply_all",
    "compact",
    "empty_ledger",
    "owned_active",
    "recent_removals",
    "record_foreign",
]

_STATUS_AFTER = {
    CommandKind.ENROL: EnrolmentStatus.ACTIVE,
    CommandKind.REACTIVATE: EnrolmentStatus.ACTIVE,
    CommandKind.CHANGE_ROLE: EnrolmentStatus.ACTIVE,
    CommandKind.SUSPEND: EnrolmentStatus.SUSPENDED,
    CommandKind.UNENROL: EnrolmentStatus.UNENROLLED,
}


@dataclass(frozen=True, slots=True)
class CourseLedger:
    course: str
    entries: Mapping[str, LedgerEntry]


def empty_ledger(course: str) -> CourseLedger:
    return CourseLedger(course, MappingProxyType({}))


def apply(ledger: CourseLedger, command: MoodleCommand, now: datetime) -> CourseLedger:
    """The ledger after Moodle accepted ``command``; refuses to write over a foreign enrolment."""
    old = ledger.entries.get(command.user)
    if old is not None and not old.owned:
        raise ValueError(f"ownership: {command.user!r} in {ledger.course!r} is not ours")
    status = _STATUS_AFTER[command.kind]
    since = old.since if old is not None and old.status is status else now
    entry = LedgerEntry(
        ledger.course,
        command.user,
        command.enrolment,
        status,
        True,
        since,
        command.approved_at,
        *((old.moodle_user_id, old.moodle_course_id) if old is not None else (None, None)),
    )
    return replace(ledger, entries={**ledger.entries, command.user: entry})


def apply_all(
    ledger: CourseLedger, commands: Iterable[MoodleCommand], now: datetime
) -> CourseLedger:
    for command in commands:
        ledger = apply(ledger, command, now)
    return ledger


def record_foreign(
    ledger: CourseLedger, user: str, enrolment: EnrolmentTuple, now: datetime
) -> CourseLedger:
    """Note an enrolment made by someone else (a teacher, another method): never ours to touch."""
    status = EnrolmentStatus.SUSPENDED if enrolment.suspend else EnrolmentStatus.ACTIVE
    entry = LedgerEntry(ledger.course, user, enrolment, status, False, now)
    return replace(ledger, entries={**ledger.entries, user: entry})


def owned_active(ledger: CourseLedger) -> int:
    return sum(1 for e in ledger.entries.values() if e.owned and e.status is EnrolmentStatus.ACTIVE)


def recent_removals(
    ledger: CourseLedger, since: datetime, excluding: Container[str] = ()
) -> tuple[int, int]:
    """Removals we made after ``since``: (not approved by an operator, all).

    ``excluding`` names users about to be re-added, whose removal no longer stands.
    """
    removed = [
        e
        for e in ledger.entries.values()
        if e.owned
        and e.status is not EnrolmentStatus.ACTIVE
        and e.since > since
        and e.user not in excluding
    ]
    return sum(1 for e in removed if e.approved_at is None), len(removed)


def compact(ledger: CourseLedger, before: datetime) -> CourseLedger:
    """Forget unenrolled entries older than ``before`` (nothing left in Moodle to own)."""
    kept = {
        user: e
        for user, e in ledger.entries.items()
        if e.status is not EnrolmentStatus.UNENROLLED or e.since >= before
    }
    return ledger if len(kept) == len(ledger.entries) else replace(ledger, entries=kept)
