"""Drift: what Moodle holds for a course against what the reconciler wants and last did there.

``drift(desired, ledger, observed, policy)`` compares, user by user, the desired state (the
highest-precedence present role), the ledger (what the reconciler did, or found and must not
touch) and the enrolments read from Moodle. It reports, for the enrolments the reconciler
is responsible for:

* ``missing`` — wanted, and Moodle has no enrolment for the user;
* ``wrong_status`` — wanted but suspended in Moodle; or suspended by the reconciler (the
  removal went through) and active again in Moodle;
* ``wrong_role`` — wanted with one role, holding another in Moodle;
* ``extra`` — unenrolled by the reconciler (``removal=unenrol``), present in Moodle again.

A foreign enrolment (a teacher's, another method's) is never drift: it is not the
reconciler's. An enrolment in Moodle that is neither wanted nor known to the ledger is
counted as *unmanaged* (someone enrolled the user by hand after the course was adopted), not
reported. A removal still in its grace window, or held by the guard, is not drift either:
the ledger still says "active" and so does Moodle; when Moodle is already *ahead* (suspended
or absent) there is nothing to repair.

``resync(ledger, observed, users, now)`` is the repair: it sets the ledger's *owned* entries
of those users to what Moodle showed (or drops them when Moodle has none), so that the next
``plan`` sends exactly the commands that bring Moodle back — through the guard, audited like
any other change. Foreign entries are never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry
from streams.domain.desired import CourseDesired, present
from streams.domain.ledger import CourseLedger
from streams.domain.policy import PlanPolicy

__all__ = ["CourseDrift", "Drift", "DriftKind", "Observed", "drift", "resync"]


class DriftKind(StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    WRONG_STATUS = "wrong_status"
    WRONG_ROLE = "wrong_role"


@dataclass(frozen=True, slots=True)
class Observed:
    """One user's enrolment as read from Moodle (highest known role, suspended or not)."""

    user: str
    role: str
    suspended: bool
    moodle_user_id: int | None = None

    def describe(self) -> str:
        return f"{'suspended' if self.suspended else 'active'} {self.role}"


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference the reconciler is responsible for (and repairs with ``--repair``);
    ``ledger`` is what the reconciler last did for the user (None: nothing yet)."""

    course: str
    user: str
    kind: DriftKind
    expected: str
    found: str
    ledger: LedgerEntry | None


@dataclass(frozen=True, slots=True)
class CourseDrift:
    course: str
    items: tuple[Drift, ...]
    checked: int  # users looked at: wanted, in the ledger, or in Moodle
    unmanaged: int  # in Moodle, neither wanted nor known to the ledger: left alone

    def count(self, kind: DriftKind) -> int:
        return sum(1 for d in self.items if d.kind is kind)


def drift(
    desired: CourseDesired,
    ledger: CourseLedger,
    observed: Mapping[str, Observed],
    policy: PlanPolicy,
) -> CourseDrift:
    course = desired.course
    if ledger.course != course:
        raise ValueError(f"desired {course!r} compared with ledger {ledger.course!r}")
    wanted = present(desired, policy.role_precedence)
    users = sorted({*wanted, *ledger.entries, *observed})
    items: list[Drift] = []
    unmanaged = 0
    for user in users:
        held, seen = ledger.entries.get(user), observed.get(user)
        if held is not None and not held.owned:
            continue  # foreign: never ours to judge
        entry = wanted.get(user)
        if entry is not None:
            found = _against_wanted(course, user, entry.role, held, seen)
        elif held is not None:
            found = _against_removal(course, user, held, seen)
        else:
            unmanaged += 1  # only in Moodle
            found = None
        if found is not None:
            items.append(found)
    return CourseDrift(course, tuple(items), len(users), unmanaged)


def _against_wanted(
    course: str, user: str, role: str, held: LedgerEntry | None, seen: Observed | None
) -> Drift | None:
    expected = f"active {role}"
    if seen is None:
        return Drift(course, user, DriftKind.MISSING, expected, "absent", held)
    if seen.suspended:
        return Drift(course, user, DriftKind.WRONG_STATUS, expected, seen.describe(), held)
    if seen.role != role:
        return Drift(course, user, DriftKind.WRONG_ROLE, expected, seen.describe(), held)
    return None


def _against_removal(
    course: str, user: str, held: LedgerEntry, seen: Observed | None
) -> Drift | None:
    """Not wanted, and ours: judge Moodle against the removal the ledger records."""
    if held.status is EnrolmentStatus.SUSPENDED and seen is not None and not seen.suspended:
        expected = f"suspended {held.enrolment.role}"
        return Drift(course, user, DriftKind.WRONG_STATUS, expected, seen.describe(), held)
    if held.status is EnrolmentStatus.UNENROLLED and seen is not None:
        return Drift(course, user, DriftKind.EXTRA, "absent", seen.describe(), held)
    return None  # removal pending (grace, guard) or Moodle already ahead of it


def resync(
    ledger: CourseLedger,
    observed: Mapping[str, Observed],
    users: Iterable[str],
    now: datetime,
) -> CourseLedger:
    """The ledger with the owned entries of ``users`` set to what Moodle showed (dropped when
    Moodle has no enrolment), so that the next plan repairs them. Foreign entries and users
    the ledger does not hold are left as they are."""
    entries = dict(ledger.entries)
    for user in users:
        held = entries.get(user)
        if held is None or not held.owned:
            continue
        seen = observed.get(user)
        if seen is None:
            del entries[user]
            continue
        status = EnrolmentStatus.SUSPENDED if seen.suspended else EnrolmentStatus.ACTIVE
        tuple_ = EnrolmentTuple(
            seen.role, held.enrolment.timestart, held.enrolment.timeend, seen.suspended
        )
        if held.enrolment == tuple_ and held.status is status:
            continue
        moodle_user_id = seen.moodle_user_id or held.moodle_user_id
        entries[user] = replace(
            held, enrolment=tuple_, status=status, since=now, moodle_user_id=moodle_user_id
        )
    return replace(ledger, entries=entries)
