"""Builders for plan tests: facts, desired states and ledgers, without the fold."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry
from schemas.facts import FactKind, MembershipFact
from streams.domain.desired import CourseChange, CourseDesired, apply_change, empty_desired
from streams.domain.ledger import CourseLedger, empty_ledger

COURSE = "2026-INF101"


def fact(user: str, elp: str = "INF101", etp: str = "L1INF", vrs: int = 1) -> MembershipFact:
    return MembershipFact(user, FactKind.ELEMENT, "2026", etp, vrs, elp, cod_ind=int(user))


def assert_(
    desired: CourseDesired, user: str, at: datetime, role: str = "student", elp: str = "INF101"
) -> CourseDesired:
    return apply_change(desired, CourseChange(desired.course, role, fact(user, elp), True), at)


def retract(
    desired: CourseDesired, user: str, at: datetime, role: str = "student", elp: str = "INF101"
) -> CourseDesired:
    return apply_change(desired, CourseChange(desired.course, role, fact(user, elp), False), at)


def desired_of(users: Iterable[str], at: datetime, course: str = COURSE) -> CourseDesired:
    desired = empty_desired(course)
    for user in users:
        desired = assert_(desired, user, at)
    return desired


def entry(
    user: str,
    since: datetime,
    status: EnrolmentStatus = EnrolmentStatus.ACTIVE,
    owned: bool = True,
    role: str = "student",
    course: str = COURSE,
) -> LedgerEntry:
    suspend = status is EnrolmentStatus.SUSPENDED
    return LedgerEntry(course, user, EnrolmentTuple(role, 0, 0, suspend), status, owned, since)


def ledger_of(entries: Iterable[LedgerEntry], course: str = COURSE) -> CourseLedger:
    return CourseLedger(course, {e.user: e for e in entries}) if entries else empty_ledger(course)


def kinds(commands: Iterable[MoodleCommand]) -> list[tuple[CommandKind, str]]:
    return [(c.kind, c.user) for c in commands]
