"""What ``plan`` does with one course, one case at a time (read as documentation)."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.commands import CommandKind
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple
from streams.domain.desired import CourseDesired, empty_desired
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
