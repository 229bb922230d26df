"""Site policies read by the rules: payment, grace, removal mode, guard thresholds, approvals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "NO_APPROVALS",
    "Approvals",
    "FoldPolicy",
    "GuardPolicy",
    "PlanPolicy",
    "RemovalMode",
]


@dataclass(frozen=True, slots=True)
class FoldPolicy:
    """How source rows become facts.

    ``paid_states``: when set, an administrative enrolment counts only if its
    ``ETA_PMT_IAE`` is one of these (some sites enrol paid students only).
    """

    valid_iae_states: frozenset[str] = frozenset({"E"})
    followed_ice_states: frozenset[str] = frozenset({"N"})
    paid_states: frozenset[str] | None = None


class RemovalMode(StrEnum):
    SUSPEND = "suspend"  # default: grades, groups and submissions survive
    UNENROL = "unenrol"  # explicit site choice only


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """Mass-removal thresholds, per course and global.

    Trips when the removals pending plus those done in the last ``window`` exceed
    ``max_count``, or exceed ``max_share`` of the population once that population is at
    least ``share_floor`` (so a 3-student course losing 2 is not a "mass" removal).
    """

    window: timedelta = timedelta(hours=24)
    course_max_count: int = 30
    course_max_share: float = 0.25
    global_max_count: int = 1000
    global_max_share: float = 0.05
    share_floor: int = 20


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """How desired state and ledger become Moodle commands."""

    grace: timedelta = timedelta(hours=1)
    removal: RemovalMode = RemovalMode.SUSPEND
    guard: GuardPolicy = field(default_factory=GuardPolicy)
    # Highest first: a user with several supported roles in a course holds the first.
    role_precedence: tuple[str, ...] = ("editingteacher", "teacher", "student")
    timestart: int = 0
    timeend: int = 0


_EMPTY: Mapping[str, datetime] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Approvals:
    """Operator approvals: removals due at or before the time given pass the guard."""

    courses: Mapping[str, datetime] = field(default_factory=lambda: _EMPTY)
    everywhere: datetime | None = None

    def for_course(self, course: str) -> datetime | None:
        return self.courses.get(course)


NO_APPROVALS = Approvals()
