"""``plan(desired, ledger, policy, now) -> CoursePlan``: the commands that reconcile one course.

Pure and level-triggered: it reads the two states, not the events that led there.

* Additions never wait: enrol (or reactivate a suspension, or change role) at once.
* Removals (suspend by default, unenrol only by policy) wait out the grace window,
  counted from when the last supporting fact was withdrawn, then pass the guard.
* Only entries the ledger owns are ever changed; a user absent from the ledger is
  only ever enrolled.
* Applying the commands to the ledger (``ledger.apply_all``) and planning again at
  the same ``now`` plans nothing.

``admit_global`` then applies the global guard across the plans of many courses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import DesiredEnrolment, EnrolmentStatus, EnrolmentTuple, LedgerEntry
from schemas.facts import MembershipFact
from streams.domain.desired import CourseDesired, present
from streams.domain.guard import Limits, PlannedRemoval, admit
from streams.domain.ledger import CourseLedger, recent_removals
from streams.domain.policy import NO_APPROVALS, Approvals, GuardPolicy, PlanPolicy, RemovalMode

__all__ = ["CoursePlan", "GlobalLoad", "admit_global", "plan"]


@dataclass(frozen=True, slots=True)
class CoursePlan:
    """What to send now for one course, what the guard holds, and when to plan again."""

    course: str
    additions: tuple[MoodleCommand, ...] = ()
    removals: tuple[PlannedRemoval, ...] = ()
    held: tuple[PlannedRemoval, ...] = ()
    next_due: datetime | None = None

    @property
    def commands(self) -> tuple[MoodleCommand, ...]:
        return self.additions + tuple(r.command for r in self.removals)


def plan(
    desired: CourseDesired,
    ledger: CourseLedger,
    policy: PlanPolicy,
    now: datetime,
    approvals: Approvals = NO_APPROVALS,
) -> CoursePlan:
    if desired.course != ledger.course:
        raise ValueError(f"desired {desired.course!r} planned against ledger {ledger.course!r}")
    wanted = present(desired, policy.role_precedence)
    pending = _pending_removals(desired, ledger, wanted, policy)
    due = tuple(r for r in pending if r.due <= now)
    waiting = [r.due for r in pending if r.due > now]
    # The guard counts the course as it will be once this plan is applied, each removal
    # once, so that planning again after applying it decides the same way (idempotence).
    since = now - policy.guard.window
    busy = {*wanted, *(r.command.user for r in pending)}
    unapproved, _ = recent_removals(ledger, since, busy)
    base = _population(ledger, wanted, since, policy.removal)
    limits, approved_at = _course_limits(policy.guard), approvals.for_course(ledger.course)
    admitted, held = admit(due, unapproved + len(pending), base, limits, approved_at)
    additions = _additions(wanted, ledger, policy)
    return CoursePlan(ledger.course, additions, admitted, held, min(waiting, default=None))


def _population(
    ledger: CourseLedger, wanted: dict[str, DesiredEnrolment], since: datetime, mode: RemovalMode
) -> int:
    """Users the share threshold is taken of: wanted, still removable, or removed lately."""
    members = {user for user in wanted if _ours_or_new(ledger, user)}
    members.update(
        e.user
        for e in ledger.entries.values()
        if _removable(e, mode)
        or (e.owned and e.status is not EnrolmentStatus.ACTIVE and e.since > since)
    )
    return len(members)


def _ours_or_new(ledger: CourseLedger, user: str) -> bool:
    held = ledger.entries.get(user)
    return held is None or held.owned


def _course_limits(guard: GuardPolicy) -> Limits:
    return Limits(guard.course_max_count, guard.course_max_share, guard.share_floor)


def _target(entry: DesiredEnrolment, policy: PlanPolicy) -> EnrolmentTuple:
    for fact in entry.facts:  # a loop, not a generator: this runs for every wanted member
        if fact.timestart is not None or fact.timeend is not None:
            return EnrolmentTuple(entry.role, *_dates(entry.facts, policy), False)
    return EnrolmentTuple(entry.role, policy.timestart, policy.timeend, False)


def _dates(facts: tuple[MembershipFact, ...], policy: PlanPolicy) -> tuple[int, int]:
    """The widest window of the facts supporting an enrolment (0 = open): a fact without
    dates of its own stands for the policy's, so an APOGÉE fact keeps it open-ended."""
    starts = [policy.timestart if f.timestart is None else f.timestart for f in facts]
    ends = [policy.timeend if f.timeend is None else f.timeend for f in facts]
    return min(starts), (0 if 0 in ends else max(ends))  # an open start (0) is the least


def _additions(
    wanted: dict[str, DesiredEnrolment], ledger: CourseLedger, policy: PlanPolicy
) -> tuple[MoodleCommand, ...]:
    commands = (
        _addition(entry, ledger.entries.get(user), policy) for user, entry in sorted(wanted.items())
    )
    return tuple(c for c in commands if c is not None)


def _addition(
    entry: DesiredEnrolment, held: LedgerEntry | None, policy: PlanPolicy
) -> MoodleCommand | None:
    target = _target(entry, policy)
    if held is not None and (not held.owned or _as_wanted(held, target)):
        return None  # foreign, or already as wanted: the common case, kept cheap
    facts = _facts(entry.facts)
    if held is None or held.status is EnrolmentStatus.UNENROLLED:
        return MoodleCommand(CommandKind.ENROL, entry.course, entry.user, target, facts=facts)
    if held.status is EnrolmentStatus.SUSPENDED:
        return MoodleCommand(CommandKind.REACTIVATE, entry.course, entry.user, target, facts=facts)
    if held.enrolment.role != target.role:
        return MoodleCommand(
            CommandKind.CHANGE_ROLE,
            entry.course,
            entry.user,
            target,
            previous_role=held.enrolment.role,
            facts=facts,
        )
    return MoodleCommand(CommandKind.ENROL, entry.course, entry.user, target, facts=facts)


def _as_wanted(held: LedgerEntry, target: EnrolmentTuple) -> bool:
    return held.status is EnrolmentStatus.ACTIVE and held.enrolment == target


def _facts(facts: tuple[MembershipFact, ...]) -> tuple[MembershipFact, ...]:
    """In a stable order (the audit trail compares equal across replays)."""
    return facts if len(facts) < 2 else tuple(sorted(facts, key=repr))


def _removable(entry: LedgerEntry, mode: RemovalMode) -> bool:
    if not entry.owned:
        return False
    if mode is RemovalMode.UNENROL:
        return entry.status is not EnrolmentStatus.UNENROLLED
    return entry.status is EnrolmentStatus.ACTIVE


def _pending_removals(
    desired: CourseDesired,
    ledger: CourseLedger,
    wanted: dict[str, DesiredEnrolment],
    policy: PlanPolicy,
) -> tuple[PlannedRemoval, ...]:
    withdrawn = _withdrawn_by_user(desired)
    return tuple(
        _removal(entry, withdrawn.get(user), policy)
        for user, entry in sorted(ledger.entries.items())
        if user not in wanted and _removable(entry, policy.removal)
    )


def _withdrawn_by_user(desired: CourseDesired) -> dict[str, DesiredEnrolment]:
    """user → the most recently withdrawn of their absent entries; entries withdrawn at the
    same instant (one change removing two roles) pool their withdrawn facts."""
    latest: dict[str, DesiredEnrolment] = {}
    for entry in desired.entries.values():
        held = latest.get(entry.user)
        if entry.present or (held is not None and entry.since < held.since):
            continue
        if held is not None and entry.since == held.since:
            entry = replace(entry, withdrawn=held.withdrawn + entry.withdrawn)
        latest[entry.user] = entry
    return latest


def _removal(
    entry: LedgerEntry, withdrawn: DesiredEnrolment | None, policy: PlanPolicy
) -> PlannedRemoval:
    absent_since = entry.since if withdrawn is None else max(withdrawn.since, entry.since)
    facts = () if withdrawn is None else _facts(withdrawn.withdrawn)
    if policy.removal is RemovalMode.UNENROL:
        kind, tuple_ = CommandKind.UNENROL, entry.enrolment
    else:
        kind, tuple_ = CommandKind.SUSPEND, replace(entry.enrolment, suspend=True)
    command = MoodleCommand(kind, entry.course, entry.user, tuple_, facts=facts)
    return PlannedRemoval(command, absent_since + policy.grace)


@dataclass(frozen=True, slots=True)
class GlobalLoad:
    """Across all courses: unapproved removals made in the window, and the owned population."""

    recent: int
    base: int


def admit_global(
    plans: Sequence[CoursePlan],
    load: GlobalLoad,
    policy: PlanPolicy,
    approvals: Approvals = NO_APPROVALS,
) -> tuple[CoursePlan, ...]:
    """Hold the unapproved removals of these plans if together they trip the global guard."""
    guard = policy.guard
    limits = Limits(guard.global_max_count, guard.global_max_share, guard.share_floor)
    due = [r for p in plans for r in p.removals]
    admitted, _ = admit(due, load.recent + len(due), load.base, limits, approvals.everywhere)
    passed = {_removal_key(r): r for r in admitted}
    return tuple(_split(p, passed) for p in plans)


def _removal_key(removal: PlannedRemoval) -> tuple[str, str]:
    return removal.command.course, removal.command.user


def _split(p: CoursePlan, passed: dict[tuple[str, str], PlannedRemoval]) -> CoursePlan:
    removals = tuple(passed[k] for k in map(_removal_key, p.removals) if k in passed)
    held = tuple(r for r in p.removals if _removal_key(r) not in passed)
    return replace(p, removals=removals, held=p.held + held)
