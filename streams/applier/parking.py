"""Parked work: enrolments and courses that cannot be applied now, each with a bounded reason.

Parking is not giving up: the applier keeps the course's plan and looks again at
``retry_at`` (a missing user or course is applied as soon as it appears). A permanent
rejection by Moodle (invalid user, role not assignable) is also looked at again, less
often, since an administrator may fix it in Moodle. Reasons are metric labels: a fixed list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ParkReason", "Parked", "Parking"]


class ParkReason(StrEnum):
    USER_NOT_FOUND = "user_not_found"
    COURSE_NOT_FOUND = "course_not_found"
    NO_MANUAL_INSTANCE = "no_manual_instance"
    ROLE_NOT_ASSIGNABLE = "role_not_assignable"
    UNKNOWN_ROLE = "unknown_role"  # a role shortname missing from RECONCILER_ROLE_IDS
    USER_REJECTED = "user_rejected"  # invaliduser, userdeleted…
    NO_PERMISSION = "no_permission"
    REJECTED = "rejected"  # any other permanent error for one enrolment
    MOODLE_BUG = "moodle_bug"  # codingerror and unexpected answers


@dataclass(frozen=True, slots=True)
class Parked:
    reason: ParkReason
    detail: str
    since: float
    retry_at: float


class Parking:
    """Parked courses and (course, user) enrolments, with when to look again."""

    def __init__(self) -> None:
        self.courses: dict[str, Parked] = {}
        self.users: dict[tuple[str, str], Parked] = {}

    def park_course(
        self, course: str, reason: ParkReason, detail: str, now: float, retry_s: float
    ) -> bool:
        """Returns True when newly parked (worth an audit record), False when already was."""
        old = self.courses.get(course)
        since = old.since if old is not None and old.reason is reason else now
        self.courses[course] = Parked(reason, detail, since, now + retry_s)
        return old is None or old.reason is not reason

    def park_user(
        self, course: str, user: str, reason: ParkReason, detail: str, now: float, retry_s: float
    ) -> bool:
        key = (course, user)
        old = self.users.get(key)
        since = old.since if old is not None and old.reason is reason else now
        self.users[key] = Parked(reason, detail, since, now + retry_s)
        return old is None or old.reason is not reason

    def course_blocked(self, course: str, now: float) -> bool:
        parked = self.courses.get(course)
        return parked is not None and parked.retry_at > now

    def user_blocked(self, course: str, user: str, now: float) -> bool:
        parked = self.users.get((course, user))
        return parked is not None and parked.retry_at > now

    def unpark_course(self, course: str) -> None:
        self.courses.pop(course, None)

    def unpark_user(self, course: str, user: str) -> None:
        self.users.pop((course, user), None)

    def forget_course(self, course: str) -> None:
        self.courses.pop(course, None)
        for key in [k for k in self.users if k[0] == course]:
            del self.users[key]

    def counts(self) -> Counter[str]:
        """Parked enrolments and courses by reason (the ``parked`` gauge)."""
        counts: Counter[str] = Counter(p.reason.value for p in self.users.values())
        counts.update(p.reason.value for p in self.courses.values())
        return counts
