"""Desired and applied enrolments: what should be in Moodle, and what we did there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import with_config

from schemas._types import CONTRACT
from schemas.facts import MembershipFact

__all__ = ["DesiredEnrolment", "EnrolmentStatus", "EnrolmentTuple", "LedgerEntry"]


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class EnrolmentTuple:
    """The full tuple Moodle stores; always sent whole because Moodle resets omitted fields."""

    role: str
    timestart: int = 0
    timeend: int = 0
    suspend: bool = False


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class DesiredEnrolment:
    """(course, user, role) with the facts supporting it; present while ``facts`` is non-empty.

    ``since`` is when it last became present or absent (the grace window counts from
    it); ``withdrawn`` keeps the facts whose retraction emptied it, for the audit trail.
    """

    course: str
    user: str
    role: str
    facts: tuple[MembershipFact, ...]  # a set in meaning; a tuple is 4x smaller than a frozenset
    since: datetime
    withdrawn: tuple[MembershipFact, ...] = ()

    @property
    def present(self) -> bool:
        return bool(self.facts)


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    UNENROLLED = "unenrolled"


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One enrolment as this reconciler last left it in Moodle (or found it, if not ``owned``).

    ``since`` is when ``status`` last changed; ``approved_at`` is set on a removal an
    operator approved past the mass-removal guard (it then does not count against it).
    """

    course: str
    user: str
    enrolment: EnrolmentTuple
    status: EnrolmentStatus
    owned: bool
    since: datetime
    approved_at: datetime | None = None
    moodle_user_id: int | None = None
    moodle_course_id: int | None = None
