"""Domain-level Moodle commands planned by ``plan``; the Moodle adapter turns them into WS calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import with_config

from schemas._types import CONTRACT
from schemas.enrolment import EnrolmentTuple
from schemas.facts import MembershipFact

__all__ = ["CommandKind", "MoodleCommand"]


class CommandKind(StrEnum):
    ENROL = "enrol"  # enrol_manual_enrol_users, suspend=0
    REACTIVATE = "reactivate"  # enrol_manual_enrol_users on a suspended enrolment, suspend=0
    SUSPEND = "suspend"  # enrol_manual_enrol_users, suspend=1 (the default removal)
    UNENROL = "unenrol"  # enrol_manual_unenrol_users (only under the unenrol policy)
    CHANGE_ROLE = "change_role"  # enrol with the new role, then unassign ``previous_role``


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class MoodleCommand:
    """One change to one enrolment, always with the full tuple and the facts behind it.

    For ``unenrol`` the tuple is the last one applied (informative); for ``suspend``
    the facts are the withdrawn ones, i.e. the changes that removed the membership.
    ``approved_at`` marks a removal let through the mass-removal guard by an operator.
    """

    kind: CommandKind
    course: str
    user: str
    enrolment: EnrolmentTuple
    previous_role: str | None = None
    facts: tuple[MembershipFact, ...] = ()
    approved_at: datetime | None = None

    def __post_init__(self) -> None:
        suspends = self.kind is CommandKind.SUSPEND
        if self.enrolment.suspend != suspends and self.kind is not CommandKind.UNENROL:
            raise ValueError(f"{self.kind} needs suspend={suspends}")
        if (self.previous_role is not None) != (self.kind is CommandKind.CHANGE_ROLE):
            raise ValueError("previous_role is set exactly for change_role")
