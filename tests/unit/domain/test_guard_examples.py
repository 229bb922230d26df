"""The mass-removal guard, both sides of every threshold (read as documentation).

Defaults: a course trips when its load (unapproved removals made in the last 24 h plus
removals pending now) exceeds 30, or exceeds 25 % of its population once that population
is at least 20. The population is every user wanted (ours or new), still removable, or
removed within the window. Globally: 1000, or 5 % of the owned population.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from schemas.commands import CommandKind
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry
from streams.domain.desired import CourseDesired
from streams.domain.ledger import CourseLedger, apply_all, record_foreign
from streams.domain.plan import CoursePlan, GlobalLoad, admit_global, plan
from streams.domain.policy import Approvals, GuardPolicy, PlanPolicy, RemovalMode
from tests.unit.domain.builders import COURSE, assert_, desired_of, entry, ledger_of, retract

T0 = datetime(2026, 9, 1, 8, 0)
HOUR, DAY, SECOND = timedelta(hours=1), timedelta(days=1), timedelta(seconds=1)
NOW = T0 + HOUR  # removals withdrawn at T0 are due exactly now (grace 1 h)
POLICY = PlanPolicy(grace=HOUR)
UNENROL_POLICY = PlanPolicy(grace=HOUR, removal=RemovalMode.UNENROL)
SUSPENDED = EnrolmentStatus.SUSPENDED


def users(first: int, count: int) -> list[str]:
    return [str(u) for u in range(first, first + count)]


def course(
    wanted: int, leaving: int, extra: Iterable[LedgerEntry] = (), withdrawn_at: datetime = T0
) -> tuple[CourseDesired, CourseLedger]:
    """``wanted`` members staying, ``leaving`` more withdrawn at ``withdrawn_at``, all enrolled
    by us a day before; plus ``extra`` ledger entries (numbered from 1000)."""
    staying, going = users(1, wanted), users(wanted + 1, leaving)
    desired = desired_of(staying + going, T0 - DAY)
    for user in going:
        desired = retract(desired, user, withdrawn_at)
    ledger = ledger_of([*(entry(u, T0 - DAY) for u in staying + going), *extra])
    return desired, ledger


def removed(user: str, since: datetime, approved: bool = False) -> LedgerEntry:
    """A removal we made (suspended) at ``since``."""
    suspended = entry(user, since, SUSPENDED)
    return replace(suspended, approved_at=since) if approved else suspended


def counts(result: CoursePlan) -> tuple[int, int]:
    return len(result.removals), len(result.held)


# -- 1. both sides of each threshold ---------------------------------------------------------


@pytest.mark.parametrize(("leaving", "expected"), [(30, (30, 0)), (31, (0, 31))])
def test_exactly_the_count_passes_one_more_is_held(leaving: int, expected: tuple[int, int]) -> None:
    desired, ledger = course(200 - leaving, leaving)  # 15 % of 200: the share is not at stake
    assert counts(plan(desired, ledger, POLICY, NOW)) == expected


@pytest.mark.parametrize(("leaving", "expected"), [(5, (5, 0)), (6, (0, 6))])
def test_exactly_a_quarter_passes_one_more_is_held(leaving: int, expected: tuple[int, int]) -> None:
    desired, ledger = course(20 - leaving, leaving)
    assert counts(plan(desired, ledger, POLICY, NOW)) == expected


def test_below_the_floor_only_the_count_applies() -> None:
    desired, ledger = course(13, 6)  # 6 of 19: a third, but 19 < 20
    assert counts(plan(desired, ledger, POLICY, NOW)) == (6, 0)


def test_ordinary_removals_pass_in_a_large_course() -> None:
    desired, ledger = course(199, 1)
    result = plan(desired, ledger, POLICY, NOW)
    assert [(r.command.kind, r.command.user) for r in result.removals] == [
        (CommandKind.SUSPEND, "200")
    ]


def test_unapproved_recent_removals_count_once() -> None:
    recent = [removed(u, T0) for u in users(1000, 20)]
    desired, ledger = course(170, 10, recent)  # load 20 + 10 = 30
    assert counts(plan(desired, ledger, POLICY, NOW)) == (10, 0)
    desired, ledger = course(170, 10, [*recent, removed("1100", T0)])  # 31
    assert counts(plan(desired, ledger, POLICY, NOW)) == (0, 10)


def test_approved_removals_no_longer_count() -> None:
    approved = [removed(u, T0, approved=True) for u in users(1000, 25)]
    desired, ledger = course(165, 10, approved)
    assert counts(plan(desired, ledger, POLICY, NOW)) == (10, 0)


def test_a_removed_user_being_re_added_no_longer_counts() -> None:
    recent = [removed(u, T0) for u in users(1000, 21)]
    desired, ledger = course(169, 10, recent)
    desired = assert_(desired, "1000", T0)  # back: reactivated by this plan
    result = plan(desired, ledger, POLICY, NOW)
    assert counts(result) == (10, 0)  # 20 + 10, not 21 + 10
    assert (CommandKind.REACTIVATE, "1000") in [(c.kind, c.user) for c in result.additions]


def test_a_recent_removal_pending_again_counts_once() -> None:
    # Unenrol mode: our recent suspensions are pending unenrols, counted as pending only.
    recent = [removed(u, T0) for u in users(1000, 15)]
    desired, ledger = course(170, 15, recent)
    result = plan(desired, ledger, UNENROL_POLICY, NOW + HOUR)
    assert counts(result) == (30, 0)


@pytest.mark.parametrize(
    ("removed_at", "expected"),
    [(NOW - DAY, (2, 0)), (NOW - DAY + SECOND, (0, 2))],
    ids=["exactly-window-ago", "just-inside"],
)
def test_a_removal_exactly_window_ago_has_left_the_window(
    removed_at: datetime, expected: tuple[int, int]
) -> None:
    desired, ledger = course(200, 2, [removed(u, removed_at) for u in users(1000, 29)])
    assert counts(plan(desired, ledger, POLICY, NOW)) == expected


def test_a_removal_due_exactly_now_is_sent_and_nothing_is_left_to_wait_for() -> None:
    desired, ledger = course(199, 1)
    early = plan(desired, ledger, POLICY, NOW - SECOND)
    assert early.commands == () and early.next_due == NOW
    on_time = plan(desired, ledger, POLICY, NOW)
    assert counts(on_time) == (1, 0) and on_time.next_due is None


def test_next_due_is_the_earliest_removal_still_in_grace() -> None:
    desired, ledger = course(197, 1)
    desired = retract(desired, "1", T0 + 10 * timedelta(minutes=1))
    desired = retract(desired, "2", T0 + 20 * timedelta(minutes=1))
    result = plan(desired, ledger, POLICY, NOW)
    assert counts(result) == (1, 0) and result.next_due == NOW + 10 * timedelta(minutes=1)


def burst(second: int) -> tuple[CourseDesired, CourseLedger]:
    """20 withdrawn at T0 (due at T0+1h), then ``second`` more at T0+30min (due T0+1h30)."""
    desired, ledger = course(350 + second, 20)
    for user in users(1, second):
        desired = retract(desired, user, T0 + HOUR / 2)
    return desired, ledger


APPROVED_FIRST = Approvals(courses={COURSE: NOW})  # covers the first 20 only


def test_an_approval_lets_through_what_was_due_by_then() -> None:
    desired, ledger = burst(30)
    assert counts(plan(desired, ledger, POLICY, NOW)) == (0, 20)  # 50 pending: held
    result = plan(desired, ledger, POLICY, NOW, APPROVED_FIRST)
    assert counts(result) == (20, 0) and result.next_due == NOW + HOUR / 2
    assert {r.command.approved_at for r in result.removals} == {NOW}


@pytest.mark.parametrize(("second", "expected"), [(30, (50, 0)), (31, (20, 31))])
def test_after_a_partial_approval_the_rest_is_judged_on_its_own(
    second: int, expected: tuple[int, int]
) -> None:
    desired, ledger = burst(second)
    result = plan(desired, ledger, POLICY, NOW + HOUR / 2, APPROVED_FIRST)
    assert counts(result) == expected
    stamped = [r for r in result.removals if r.command.approved_at == NOW]
    assert len(stamped) == 20
    assert all(r.command.approved_at is None for r in result.removals if r not in stamped)


def test_approved_removals_once_applied_do_not_hold_the_rest_of_the_burst() -> None:
    desired, ledger = burst(30)
    first = plan(desired, ledger, POLICY, NOW, APPROVED_FIRST)
    ledger = apply_all(ledger, first.commands, NOW)
    assert counts(plan(desired, ledger, POLICY, NOW + HOUR / 2)) == (30, 0)


def test_an_approval_for_another_course_changes_nothing() -> None:
    desired, ledger = burst(30)
    elsewhere = Approvals(courses={"2026-OTHER": NOW})
    assert counts(plan(desired, ledger, POLICY, NOW, elsewhere)) == (0, 20)


# -- 2. the population ------------------------------------------------------------------------


def test_a_new_member_counts_in_the_population() -> None:
    desired, ledger = course(13, 6)
    desired = assert_(desired, "999", T0)  # not in the ledger yet: 20 with the 6 leaving
    assert counts(plan(desired, ledger, POLICY, NOW)) == (0, 6)


def test_a_wanted_user_whose_enrolment_is_foreign_does_not_count() -> None:
    desired, ledger = course(13, 6)
    desired = assert_(desired, "999", T0)
    ledger = record_foreign(ledger, "999", EnrolmentTuple("student"), T0)
    assert counts(plan(desired, ledger, POLICY, NOW)) == (6, 0)  # 19: below the floor


def test_removals_made_within_the_window_count_in_the_population() -> None:
    recent = [removed(u, T0) for u in users(1000, 4)]
    desired, ledger = course(15, 2, recent)  # 6 of 21: more than a quarter
    assert counts(plan(desired, ledger, POLICY, NOW)) == (0, 2)


def test_removals_exactly_window_ago_have_left_the_population() -> None:
    gone = [removed(u, NOW - DAY) for u in users(1000, 4)]
    desired, ledger = course(14, 6, gone)  # 6 of 20 (24 with the 4 gone): held
    assert counts(plan(desired, ledger, POLICY, NOW)) == (0, 6)


@pytest.mark.parametrize("status", [SUSPENDED, EnrolmentStatus.UNENROLLED])
def test_owned_entries_removed_long_ago_do_not_count(status: EnrolmentStatus) -> None:
    desired, ledger = course(13, 6, [entry("1000", T0 - 3 * DAY, status)])
    assert counts(plan(desired, ledger, POLICY, NOW)) == (6, 0)  # 19


def test_in_unenrol_mode_a_suspended_owned_entry_is_still_removable_and_counts() -> None:
    desired, ledger = course(13, 6, [entry("1000", T0 - 3 * DAY, SUSPENDED)])
    assert counts(plan(desired, ledger, UNENROL_POLICY, NOW)) == (0, 7)  # 7 of 20


def test_in_unenrol_mode_an_old_unenrolment_does_not_count() -> None:
    old = entry("1000", T0 - 3 * DAY, EnrolmentStatus.UNENROLLED)
    desired, ledger = course(13, 6, [old])
    assert counts(plan(desired, ledger, UNENROL_POLICY, NOW)) == (6, 0)


# -- 3. unenrol mode --------------------------------------------------------------------------


def test_unenrol_mode_unenrols_a_member_it_had_suspended() -> None:
    held = entry("1", T0, SUSPENDED)
    desired, ledger = desired_of([], T0), ledger_of([held])
    assert plan(desired, ledger, POLICY, T0 + DAY).commands == ()  # suspend mode: done
    assert plan(desired, ledger, UNENROL_POLICY, NOW - SECOND).commands == ()  # in grace
    (command,) = plan(desired, ledger, UNENROL_POLICY, NOW).commands
    assert (command.kind, command.course, command.user) == (CommandKind.UNENROL, COURSE, "1")
    assert command.enrolment == held.enrolment


# -- global -----------------------------------------------------------------------------------


def leaving_course(name: str, count: int, at: datetime = T0) -> tuple[CourseDesired, CourseLedger]:
    """A course whose ``count`` members (enrolled by us a day before) all withdrew at ``at``."""
    members = users(1, count)
    desired = desired_of(members, T0 - DAY, name)
    for user in members:
        desired = retract(desired, user, at)
    return desired, ledger_of([entry(u, T0 - DAY, course=name) for u in members], name)


def course_plans(per_course: int, courses: str = "ABC") -> list[CoursePlan]:
    return [plan(*leaving_course(name, per_course), POLICY, NOW) for name in courses]


def global_counts(plans: Iterable[CoursePlan]) -> tuple[int, int]:
    plans = list(plans)
    return sum(len(p.removals) for p in plans), sum(len(p.held) for p in plans)


GLOBAL_COUNT = PlanPolicy(grace=HOUR, guard=GuardPolicy(global_max_count=6))


@pytest.mark.parametrize(("recent", "expected"), [(0, (6, 0)), (1, (0, 6))])
def test_global_count_both_sides_with_recent_removals(
    recent: int, expected: tuple[int, int]
) -> None:
    guarded = admit_global(course_plans(2), GlobalLoad(recent, 1000), GLOBAL_COUNT)
    assert global_counts(guarded) == expected


@pytest.mark.parametrize(
    ("base", "expected"),
    [(120, (6, 0)), (119, (0, 6)), (19, (6, 0))],
    ids=["5%-of-120", "over-5%", "below-the-floor"],
)
def test_global_share_of_the_owned_population(base: int, expected: tuple[int, int]) -> None:
    # Default global_max_share is 5 %: 6 removals pass over 120 owned enrolments, not 119.
    guarded = admit_global(course_plans(2), GlobalLoad(0, base), POLICY)
    assert global_counts(guarded) == expected


def test_the_global_guard_keeps_what_the_course_guard_held() -> None:
    plans = [replace(p, removals=p.removals[:1], held=p.removals[1:]) for p in course_plans(2)]
    guarded = admit_global(plans, GlobalLoad(0, 1000), GLOBAL_COUNT)
    assert global_counts(guarded) == (3, 3)
    assert [p.course for p in guarded] == ["A", "B", "C"]
    assert [p.held for p in guarded] == [p.held for p in plans]


def test_the_global_guard_holds_every_course_s_removals_together() -> None:
    guarded = admit_global(course_plans(3), GlobalLoad(0, 1000), GLOBAL_COUNT)
    assert [(p.course, len(p.removals), len(p.held)) for p in guarded] == [
        ("A", 0, 3),
        ("B", 0, 3),
        ("C", 0, 3),
    ]


def test_a_global_approval_passes_what_was_due_by_then_and_judges_the_rest() -> None:
    late = plan(*leaving_course("D", 2, T0 + HOUR / 2), POLICY, NOW + HOUR / 2)
    approved = Approvals(everywhere=NOW)
    plans = [*course_plans(2), late]
    guarded = admit_global(plans, GlobalLoad(0, 1000), GLOBAL_COUNT, approved)
    assert global_counts(guarded) == (8, 0)  # 6 approved, then 2 <= 6
    stamped = [r for p in guarded for r in p.removals if r.command.approved_at == NOW]
    assert len(stamped) == 6
    assert global_counts(admit_global(plans, GlobalLoad(0, 1000), GLOBAL_COUNT)) == (0, 8)


def test_removals_a_course_approval_let_through_pass_the_global_guard() -> None:
    approved = [
        plan(*leaving_course(name, 3), POLICY, NOW, Approvals(courses={name: NOW})) for name in "AB"
    ]
    plans = [*approved, *course_plans(3, "C")]  # 9 > 6, but 6 were approved per course
    assert global_counts(admit_global(plans, GlobalLoad(0, 1000), GLOBAL_COUNT)) == (9, 0)
