"""Cut-over from the Database method (``enrol_database``): what it holds alone, the ledger change
that lets the reconciler enrol those users beside it, and the comparison the shadow report prints.

Moodle's core web services do not say through which method a user is enrolled
(``core_enrol_get_enrolled_users`` has no method; moodle-ws.md §4). The methods come from
Moodle's own per-enrolment data — a custom report on the *Course participants* source, read
through ``core_reportbuilder_retrieve_report`` or downloaded as CSV — as :data:`UserMethods`
(plugin → whether the user's enrolment through it is active) per user of a course.

* :func:`split` — users the Database method holds alone (no manual enrolment at all, active or
  not), and users holding a manual enrolment the reconciler did not make. The difference
  matters because ``enrol_manual_enrol_users`` on a user who already has a manual enrolment
  *updates that enrolment* (dates, status, a role added): a teacher's must never be touched,
  while a user with only a Database enrolment gets a second one, through the manual instance,
  beside it — harmless, as grades belong to the user in the course, not to the enrolment.
* :func:`beside_database` — the ledger after that finding: the foreign entries of the
  Database-only users are dropped (the plan then enrols them through the manual instance),
  and manual enrolments the ledger does not know are recorded as foreign (never touched).
* :func:`compare` — one course: the desired state against what Moodle holds through any
  method, and what the plan would do.

Example::

    found = split({"21000001": {"database": True}, "21000002": {"manual": True}}, ledger)
    ledger = beside_database(ledger, found.database_only, teachers_manual, now)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from schemas.course_events import ForeignEnrolment
from schemas.enrolment import EnrolmentStatus, LedgerEntry
from streams.domain.desired import CourseDesired, present
from streams.domain.ledger import CourseLedger
from streams.domain.plan import CoursePlan
from streams.domain.policy import PlanPolicy, RemovalMode

__all__ = [
    "DATABASE",
    "MANUAL",
    "Comparison",
    "Item",
    "Seen",
    "Split",
    "Standing",
    "UserMethods",
    "beside_database",
    "compare",
    "database_only",
    "split",
    "totals",
]

DATABASE = "database"
MANUAL = "manual"

UserMethods = Mapping[str, bool]
"""One user's enrolments in one course: enrol plugin → whether that enrolment is active."""


@dataclass(frozen=True, slots=True)
class Split:
    database_only: tuple[str, ...]  # no manual enrolment: may be enrolled beside
    manual: tuple[str, ...]  # a manual enrolment the reconciler did not make: untouchable


def split(methods: Mapping[str, UserMethods], ledger: CourseLedger) -> Split:
    """Sort a course's users by the methods of their enrolments; the reconciler's own (owned
    ledger entries: its manual enrolments) are neither."""
    alone: list[str] = []
    manual: list[str] = []
    for user, held in sorted(methods.items()):
        entry = ledger.entries.get(user)
        if entry is not None and entry.owned:
            continue
        if MANUAL in held:
            manual.append(user)
        elif DATABASE in held:
            alone.append(user)
    return Split(tuple(alone), tuple(manual))


def beside_database(
    ledger: CourseLedger,
    database_only: Iterable[str],
    manual: Iterable[ForeignEnrolment],
    moodle_course_id: int | None,
    now: datetime,
) -> CourseLedger:
    """The ledger once the Database-only users may be enrolled beside their enrolment (their
    foreign entries dropped) and the manual enrolments it did not know are foreign. Owned
    entries are never changed."""
    entries = dict(ledger.entries)
    for user in database_only:
        held = entries.get(user)
        if held is not None and not held.owned:
            del entries[user]
    for found in manual:
        if found.user in entries:
            continue
        status = EnrolmentStatus.SUSPENDED if found.enrolment.suspend else EnrolmentStatus.ACTIVE
        entries[found.user] = LedgerEntry(
            ledger.course,
            found.user,
            found.enrolment,
            status,
            False,
            now,
            None,
            found.moodle_user_id,
            moodle_course_id,
        )
    return replace(ledger, entries=entries)


def database_only(held: UserMethods | None) -> bool:
    """Active in the course through the Database method and through no manual enrolment: the
    user loses the course when the Database method is disabled."""
    return held is not None and bool(held.get(DATABASE)) and not held.get(MANUAL)


@dataclass(frozen=True, slots=True)
class Seen:
    """One user as Moodle shows them (any method): highest known role, active or not."""

    role: str
    active: bool


class Standing(StrEnum):
    """Where one user of a course stands (a desired user is exactly one of the first four)."""

    IN_SYNC = "in_sync"  # wanted, active through the reconciler's own enrolment
    OTHER = "other"  # wanted, active through another method only; the plan leaves it
    ADD = "add"  # wanted; the plan enrols (reactivates, changes the role of) the user
    MISSING = "missing"  # wanted, not active, and the plan sends nothing (a foreign entry)
    EXTRA = "extra"  # active in Moodle, not wanted, not the reconciler's: never touched
    SUSPEND = "suspend"  # the reconciler's, not wanted: removed now
    GRACE = "grace"  # … in the grace window
    HELD = "held"  # … held by the mass-removal guard


@dataclass(frozen=True, slots=True)
class Item:
    user: str
    standing: Standing
    found: str  # what Moodle shows: "active student", "suspended teacher", "absent"
    methods: str  # "database", "database+manual", "" when unknown
    beside: bool = False  # ADD while already active through another method
    database_only: bool = False


@dataclass(frozen=True, slots=True)
class Comparison:
    """One course: the desired state against Moodle (any method) and the plan."""

    course: str
    desired: int
    items: tuple[Item, ...]
    methods_known: bool

    def count(self, standing: Standing) -> int:
        return sum(1 for i in self.items if i.standing is standing)

    @property
    def in_sync(self) -> int:
        return self.desired - sum(
            self.count(s) for s in (Standing.OTHER, Standing.ADD, Standing.MISSING)
        )

    @property
    def beside(self) -> int:
        return sum(1 for i in self.items if i.beside)

    @property
    def database_only(self) -> int | None:
        """Wanted users the Database method holds alone (None: methods not known)."""
        if not self.methods_known:
            return None
        return sum(1 for i in self.items if i.database_only)


def compare(
    desired: CourseDesired,
    ledger: CourseLedger,
    seen: Mapping[str, Seen],
    plan: CoursePlan,
    policy: PlanPolicy,
    methods: Mapping[str, UserMethods] | None = None,
) -> Comparison:
    """Classify each user of the course (see :class:`Standing`); ``plan`` is ``plan(desired,
    ledger, …)`` as the worker would run it (global guard included)."""
    if desired.course != ledger.course:
        raise ValueError(f"desired {desired.course!r} compared with ledger {ledger.course!r}")
    wanted = present(desired, policy.role_precedence)
    adds = {c.user for c in plan.additions}
    due = {r.command.user for r in plan.removals}
    held = {r.command.user for r in plan.held}
    items: list[Item] = []
    for user in sorted({*wanted, *ledger.entries, *seen}):
        entry, found = ledger.entries.get(user), seen.get(user)
        mine = methods.get(user) if methods is not None else None
        active = found is not None and found.active
        ours = entry is not None and entry.owned and entry.status is EnrolmentStatus.ACTIVE
        alone = user in wanted and active and not ours and database_only(mine)
        standing: Standing | None
        if user in wanted:
            standing = _wanted(user in adds, active, ours)
        elif entry is not None and entry.owned:
            standing = _removal(user, due, held, entry, policy)
        else:
            standing = Standing.EXTRA if active else None
        if standing is None or standing is Standing.IN_SYNC:
            continue  # in sync: counted, not listed
        items.append(
            Item(
                user,
                standing,
                _found(found),
                "+".join(sorted(mine)) if mine else "",
                standing is Standing.ADD and active,
                alone,
            )
        )
    return Comparison(desired.course, len(wanted), tuple(items), methods is not None)


def _wanted(adding: bool, active: bool, ours: bool) -> Standing:
    if adding:
        return Standing.ADD
    if active:
        return Standing.IN_SYNC if ours else Standing.OTHER
    return Standing.MISSING


def _removal(
    user: str, due: set[str], held: set[str], entry: LedgerEntry, policy: PlanPolicy
) -> Standing | None:
    if user in due:
        return Standing.SUSPEND
    if user in held:
        return Standing.HELD
    removable = (
        entry.status is not EnrolmentStatus.UNENROLLED
        if policy.removal is RemovalMode.UNENROL
        else entry.status is EnrolmentStatus.ACTIVE
    )
    return Standing.GRACE if removable else None


def _found(found: Seen | None) -> str:
    if found is None:
        return "absent"
    return f"{'active' if found.active else 'suspended'} {found.role}"


def totals(comparisons: Sequence[Comparison]) -> dict[str, int | None]:
    """The report's columns summed over courses (``database_only`` None if any is unknown)."""
    known = [c.database_only for c in comparisons]
    return {
        "desired": sum(c.desired for c in comparisons),
        "in_sync": sum(c.in_sync for c in comparisons),
        "other": sum(c.count(Standing.OTHER) for c in comparisons),
        "database_only": None if None in known else sum(k or 0 for k in known),
        "add": sum(c.count(Standing.ADD) for c in comparisons),
        "beside": sum(c.beside for c in comparisons),
        "missing": sum(c.count(Standing.MISSING) for c in comparisons),
        "extra": sum(c.count(Standing.EXTRA) for c in comparisons),
        "suspend": sum(c.count(Standing.SUSPEND) for c in comparisons),
        "grace": sum(c.count(Standing.GRACE) for c in comparisons),
        "held": sum(c.count(Standing.HELD) for c in comparisons),
    }
