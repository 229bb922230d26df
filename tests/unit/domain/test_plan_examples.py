"""What ``plan`` does with one course, one case at a time (read as documentation)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.commands import CommandKind
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple
from streams.domain.desired import CourseDesired, empty_desired, forget_withdrawn
from streams.domain.ledger import CourseLedger, apply_all, empty_ledger, record_foreign
from streams.domain.plan import GlobalLoad, admit_global, plan
from streams.domain.policy import Approvals, GuardPolicy, PlanPolicy, RemovalMode
from tests.unit.domain.builders import (
    COURSE,
    assert_,
    desired_of,
    entry,
    kinds,
    ledger_of,
    retract,
)

T0 = datetime(2026, 9, 1, 8, 0)
HOUR = timedelta(hours=1)
POLICY = PlanPolicy(grace=HOUR)
ENROL, SUSPEND, UNENROL = CommandKind.ENROL, CommandKind.SUSPEND, CommandKind.UNENROL


def test_a_new_member_is_enrolled_at_once_with_the_full_tuple() -> None:
    result = plan(desired_of(["1"], T0), empty_ledger(COURSE), POLICY, T0)
    (command,) = result.commands
    assert (command.kind, command.user) == (ENROL, "1")
    assert command.enrolment == EnrolmentTuple("student", 0, 0, False)
    assert command.facts and command.facts[0].cod_elp == "INF101"  # lineage travels along


def test_planning_again_after_applying_plans_nothing() -> None:
    desired, ledger = desired_of(["1", "2"], T0), empty_ledger(COURSE)
    ledger = apply_all(ledger, plan(desired, ledger, POLICY, T0).commands, T0)
    assert plan(desired, ledger, POLICY, T0).commands == ()


def test_a_removal_waits_out_the_grace_window_then_suspends() -> None:
    desired = retract(desired_of(["1"], T0), "1", T0 + HOUR)
    ledger = ledger_of([entry("1", T0)])
    waiting = plan(desired, ledger, POLICY, T0 + HOUR + timedelta(minutes=59))
    assert waiting.commands == () and waiting.next_due == T0 + 2 * HOUR
    (suspend,) = plan(desired, ledger, POLICY, T0 + 2 * HOUR).commands
    assert (suspend.kind, suspend.enrolment.suspend) == (SUSPEND, True)
    assert suspend.facts[0].cod_elp == "INF101"  # the withdrawn fact, for the audit trail


def test_a_delete_and_reinsert_within_grace_plans_nothing() -> None:
    desired = retract(desired_of(["1"], T0), "1", T0 + HOUR)
    desired = assert_(desired, "1", T0 + HOUR + timedelta(seconds=1))
    assert plan(desired, ledger_of([entry("1", T0)]), POLICY, T0 + 5 * HOUR).commands == ()


def test_unenrol_only_under_the_unenrol_policy() -> None:
    desired = retract(desired_of(["1"], T0), "1", T0)
    policy = PlanPolicy(grace=HOUR, removal=RemovalMode.UNENROL)
    (command,) = plan(desired, ledger_of([entry("1", T0)]), policy, T0 + HOUR).commands
    assert command.kind is UNENROL


def test_a_suspended_member_who_comes_back_is_reactivated_at_once() -> None:
    ledger = ledger_of([entry("1", T0, EnrolmentStatus.SUSPENDED)])
    (command,) = plan(desired_of(["1"], T0 + HOUR), ledger, POLICY, T0 + HOUR).commands
    assert (command.kind, command.enrolment.suspend) == (CommandKind.REACTIVATE, False)


def test_a_role_change_is_planned_with_the_previous_role() -> None:
    desired = assert_(desired_of(["1"], T0), "1", T0, role="editingteacher", elp="X")
    (command,) = plan(desired, ledger_of([entry("1", T0)]), POLICY, T0).commands
    assert (command.kind, command.previous_role, command.enrolment.role) == (
        CommandKind.CHANGE_ROLE,
        "student",
        "editingteacher",
    )


def test_enrolments_the_ledger_does_not_own_are_never_touched() -> None:
    ledger = record_foreign(empty_ledger(COURSE), "1", EnrolmentTuple("editingteacher"), T0)
    ledger = record_foreign(ledger, "2", EnrolmentTuple("student"), T0)
    desired = desired_of(["1"], T0)  # wants 1 as student; 2 not at all
    assert plan(desired, ledger, POLICY, T0 + 10 * HOUR).commands == ()


def test_users_only_in_moodle_are_never_removed() -> None:
    # Nobody in the ledger: a desired state that is empty plans no removal at all.
    assert plan(empty_desired(COURSE), empty_ledger(COURSE), POLICY, T0).commands == ()


def _mass_removal(n: int) -> tuple[CourseLedger, CourseDesired]:
    users = [str(i) for i in range(n)]
    desired = desired_of(users, T0)
    for user in users[: n // 2]:
        desired = retract(desired, user, T0)
    return ledger_of([entry(u, T0) for u in users]), desired


def test_the_guard_holds_a_mass_removal_until_approved_while_additions_go_on() -> None:
    ledger, desired = _mass_removal(100)  # half the course withdrawn at once
    desired = assert_(desired, "999", T0)
    held = plan(desired, ledger, POLICY, T0 + HOUR)
    assert kinds(held.commands) == [(ENROL, "999")] and len(held.held) == 50
    approvals = Approvals(courses={COURSE: T0 + HOUR})
    released = plan(desired, ledger, POLICY, T0 + HOUR, approvals)
    assert len(released.removals) == 50 and not released.held
    assert all(r.command.approved_at == T0 + HOUR for r in released.removals)


def test_the_guard_ignores_small_courses_share_but_not_count() -> None:
    policy = PlanPolicy(grace=HOUR, guard=GuardPolicy(course_max_count=3, share_floor=20))
    ledger, desired = _mass_removal(4)  # 2 of 4 leave: 50 %, but a 4-student course
    assert len(plan(desired, ledger, policy, T0 + HOUR).removals) == 2
    ledger, desired = _mass_removal(10)  # 5 leave: more than 3
    assert len(plan(desired, ledger, policy, T0 + HOUR).held) == 5


def test_the_global_guard_holds_removals_across_courses() -> None:
    policy = PlanPolicy(grace=HOUR, guard=GuardPolicy(global_max_count=5))
    plans = []
    for course in ("A", "B", "C"):
        desired = retract(retract(desired_of(["1", "2"], T0, course), "1", T0), "2", T0)
        ledger = ledger_of([entry("1", T0, course=course), entry("2", T0, course=course)], course)
        plans.append(plan(desired, ledger, policy, T0 + HOUR))
    assert sum(len(p.removals) for p in plans) == 6
    guarded = admit_global(plans, GlobalLoad(recent=0, base=6), policy)
    assert sum(len(p.removals) for p in guarded) == 0 and sum(len(p.held) for p in guarded) == 6
    approved = admit_global(plans, GlobalLoad(0, 6), policy, Approvals(everywhere=T0 + HOUR))
    assert sum(len(p.removals) for p in approved) == 6


def test_a_trickle_of_small_removals_inside_the_window_is_still_a_mass_removal() -> None:
    policy = PlanPolicy(grace=HOUR, guard=GuardPolicy(window=24 * HOUR, course_max_count=3))
    users = [str(i) for i in range(10)]
    desired, ledger = desired_of(users, T0), ledger_of([entry(u, T0) for u in users])
    now = T0
    for pair in (users[0:2], users[2:4]):  # two small batches, an hour and a half apart
        for user in pair:
            desired = retract(desired, user, now)
        now += 90 * timedelta(minutes=1)
        result = plan(desired, ledger, policy, now)
        ledger = apply_all(ledger, result.commands, now)
    assert len(result.removals) == 0 and len(result.held) == 2  # 2 + 2 > 3 within 24 h


# -- grace counts from the latest withdrawal -------------------------------------------------


ROLE_FACT = {"student": "INF101", "teacher": "TUT"}


@pytest.mark.parametrize(("first", "last"), [("student", "teacher"), ("teacher", "student")])
def test_grace_counts_from_the_latest_withdrawal_of_a_user(first: str, last: str) -> None:
    """Two roles withdrawn 30 min apart, in either order: the removal waits for the later."""
    desired = assert_(desired_of(["1"], T0), "1", T0, role="teacher", elp="TUT")
    desired = retract(desired, "1", T0, role=first, elp=ROLE_FACT[first])
    desired = retract(desired, "1", T0 + HOUR / 2, role=last, elp=ROLE_FACT[last])
    ledger = ledger_of([entry("1", T0 - HOUR, role="teacher")])
    waiting = plan(desired, ledger, POLICY, T0 + HOUR)
    assert waiting.commands == () and waiting.next_due == T0 + HOUR + HOUR / 2
    (suspend,) = plan(desired, ledger, POLICY, T0 + HOUR + HOUR / 2).commands
    assert suspend.kind is SUSPEND
    assert [f.cod_elp for f in suspend.facts] == [ROLE_FACT[last]]  # the change that removed


def test_grace_counts_from_our_enrolment_when_it_came_after_the_withdrawal() -> None:
    desired = retract(desired_of(["1"], T0), "1", T0)
    ledger = ledger_of([entry("1", T0 + HOUR)])  # enrolled late (e.g. parked user)
    assert plan(desired, ledger, POLICY, T0 + 2 * HOUR - timedelta(seconds=1)).commands == ()
    assert kinds(plan(desired, ledger, POLICY, T0 + 2 * HOUR).commands) == [(SUSPEND, "1")]


def test_a_forgotten_withdrawal_falls_back_on_the_ledger() -> None:
    desired = forget_withdrawn(retract(desired_of(["1"], T0), "1", T0), T0 + HOUR)
    assert desired.entries == {}
    ledger = ledger_of([entry("1", T0 + HOUR)])
    (suspend,) = plan(desired, ledger, POLICY, T0 + 2 * HOUR).commands
    assert (suspend.kind, suspend.facts) == (SUSPEND, ())


# -- what the commands carry -----------------------------------------------------------------

TIMED = PlanPolicy(grace=HOUR, timestart=1_788_000_000, timeend=1_800_000_000)
TIMED_TUPLE = EnrolmentTuple("student", 1_788_000_000, 1_800_000_000, False)
OTHER = "2026-MAT201"


def test_an_enrolment_carries_the_course_and_the_site_s_times() -> None:
    (command,) = plan(desired_of(["1"], T0, OTHER), empty_ledger(OTHER), TIMED, T0).commands
    assert (command.kind, command.course, command.user) == (ENROL, OTHER, "1")
    assert command.enrolment == TIMED_TUPLE


def test_a_reactivation_carries_the_course_times_and_facts() -> None:
    desired = desired_of(["1"], T0, OTHER)
    ledger = ledger_of([entry("1", T0, EnrolmentStatus.SUSPENDED, course=OTHER)], OTHER)
    (command,) = plan(desired, ledger, TIMED, T0).commands
    assert (command.kind, command.course, command.enrolment) == (
        CommandKind.REACTIVATE,
        OTHER,
        TIMED_TUPLE,
    )
    assert command.facts == desired.entries[("1", "student")].facts


def test_a_role_change_carries_the_course_times_and_facts() -> None:
    desired = assert_(desired_of(["1"], T0, OTHER), "1", T0, role="teacher", elp="TUT")
    ledger = ledger_of([entry("1", T0, course=OTHER)], OTHER)
    (command,) = plan(desired, ledger, TIMED, T0).commands
    assert (command.kind, command.course, command.previous_role) == (
        CommandKind.CHANGE_ROLE,
        OTHER,
        "student",
    )
    assert command.enrolment == EnrolmentTuple("teacher", 1_788_000_000, 1_800_000_000, False)
    assert command.facts == desired.entries[("1", "teacher")].facts


def test_a_removal_carries_the_course() -> None:
    desired = retract(desired_of(["1"], T0, OTHER), "1", T0)
    ledger = ledger_of([entry("1", T0, course=OTHER)], OTHER)
    (command,) = plan(desired, ledger, POLICY, T0 + HOUR).commands
    assert (command.kind, command.course) == (SUSPEND, OTHER)


def test_an_unenrolled_member_who_comes_back_is_enrolled_again() -> None:
    ledger = ledger_of([entry("1", T0, EnrolmentStatus.UNENROLLED)])
    assert kinds(plan(desired_of(["1"], T0), ledger, POLICY, T0).commands) == [(ENROL, "1")]


def test_the_tuple_is_sent_again_when_the_site_s_times_change() -> None:
    desired, ledger = desired_of(["1"], T0, OTHER), empty_ledger(OTHER)
    ledger = apply_all(ledger, plan(desired, ledger, POLICY, T0).commands, T0)
    assert plan(desired, ledger, POLICY, T0).commands == ()
    (resend,) = plan(desired, ledger, TIMED, T0 + HOUR).commands
    assert (resend.kind, resend.course, resend.enrolment) == (ENROL, OTHER, TIMED_TUPLE)
    assert resend.facts == desired.entries[("1", "student")].facts
    ledger = apply_all(ledger, [resend], T0 + HOUR)
    assert plan(desired, ledger, TIMED, T0 + HOUR).commands == ()
    assert ledger.entries["1"].since == T0  # still the same active enrolment


@pytest.mark.parametrize("count", [2, 3])
def test_the_facts_of_a_command_come_in_a_stable_order(count: int) -> None:
    elements = ["INF103", "INF102", "INF101"][-count:]
    forward = backward = desired_of([], T0)
    for elp in elements:
        forward = assert_(forward, "1", T0, elp=elp)
    for elp in reversed(elements):
        backward = assert_(backward, "1", T0, elp=elp)
    (one,) = plan(forward, empty_ledger(COURSE), POLICY, T0).commands
    (other,) = plan(backward, empty_ledger(COURSE), POLICY, T0).commands
    assert one.facts == other.facts
    assert [f.cod_elp for f in one.facts] == sorted(elements)


def test_plan_refuses_a_ledger_of_another_course() -> None:
    with pytest.raises(ValueError, match="desired '2026-INF101' planned against ledger 'X'"):
        plan(desired_of(["1"], T0), empty_ledger("X"), POLICY, T0)


@pytest.mark.parametrize("first", ["student", "teacher"])
def test_roles_withdrawn_at_the_same_instant_are_all_named_by_the_removal(first: str) -> None:
    """One change withdrew both of a user's roles: the audit names both facts, in a stable
    order, whichever role was asserted first."""
    second = "teacher" if first == "student" else "student"
    desired = assert_(empty_desired(COURSE), "1", T0, role=first, elp=ROLE_FACT[first])
    desired = assert_(desired, "1", T0, role=second, elp=ROLE_FACT[second])
    for role in (first, second):
        desired = retract(desired, "1", T0 + HOUR, role=role, elp=ROLE_FACT[role])
    ledger = ledger_of([entry("1", T0, role="teacher")])
    (suspend,) = plan(desired, ledger, POLICY, T0 + 2 * HOUR).commands
    assert [f.cod_elp for f in suspend.facts] == ["INF101", "TUT"]
