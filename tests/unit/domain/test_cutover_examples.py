"""The cut-over from the Database method, one case each (read as documentation): which users it
holds alone, the ledger change that lets the plan enrol them beside it, and how the shadow
report classifies a course."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.commands import CommandKind
from schemas.course_events import ForeignEnrolment
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple
from streams.domain.cutover import (
    Seen,
    Standing,
    beside_database,
    compare,
    database_only,
    split,
    totals,
)
from streams.domain.ledger import apply_all, empty_ledger
from streams.domain.plan import plan
from streams.domain.policy import GuardPolicy, PlanPolicy
from tests.unit.domain.builders import COURSE, desired_of, entry, kinds, ledger_of, retract

T0 = datetime(2026, 9, 1, 8, 0)
POLICY = PlanPolicy(grace=timedelta(hours=1))
ACTIVE, SUSPENDED = EnrolmentStatus.ACTIVE, EnrolmentStatus.SUSPENDED


def foreign(user: str, role: str = "student", status: EnrolmentStatus = ACTIVE) -> object:
    return entry(user, T0, status, owned=False, role=role)


def found(user: str, role: str = "student", suspended: bool = False) -> ForeignEnrolment:
    return ForeignEnrolment(user, EnrolmentTuple(role, 0, 0, suspended), 1000 + int(user))


# -- split: who the Database method holds alone ------------------------------------------------
def test_database_only_users_and_manual_ones_not_ours_are_told_apart() -> None:
    methods = {
        "1": {"database": True},  # the Database method alone
        "2": {"database": True, "manual": True},  # a teacher enrolled them by hand as well
        "3": {"manual": False},  # a teacher's suspended manual enrolment
        "4": {"database": False},  # suspended by the Database method (unenrolaction 2)
        "5": {"database": True, "manual": True},  # the reconciler's own, beside the Database one
        "6": {"cohort": True},  # another sync method: neither
    }
    ledger = ledger_of([foreign("1"), foreign("2"), entry("5", T0)])
    result = split(methods, ledger)
    assert result.database_only == ("1", "4")
    assert result.manual == ("2", "3")


def test_database_only_means_active_through_it_and_through_no_manual_enrolment() -> None:
    assert database_only({"database": True})
    assert database_only({"database": True, "manual": False}), "a suspended manual: no access"
    assert database_only({"database": True, "cohort": True})
    assert not database_only({"database": True, "manual": True})
    assert not database_only({"database": False})
    assert not database_only(None)


# -- beside_database: the ledger change ----------------------------------------------------------
def test_foreign_entries_of_database_only_users_are_dropped_so_the_plan_enrols_them_beside() -> (
    None
):
    desired = desired_of(["1", "2"], T0)
    ledger = ledger_of([foreign("1"), foreign("2", "editingteacher")])
    assert plan(desired, ledger, POLICY, T0).commands == (), "foreign: never touched"
    after = beside_database(ledger, ["1"], [], 7, T0)
    assert set(after.entries) == {"2"}
    assert kinds(plan(desired, after, POLICY, T0).commands) == [(CommandKind.ENROL, "1")]


def test_a_manual_enrolment_the_ledger_does_not_know_becomes_foreign_and_is_never_touched() -> None:
    """A teacher enrolled a late student by hand while the reconciler was in shadow mode:
    enrol_manual_enrol_users would update that very enrolment, so the plan must not send it."""
    desired = desired_of(["3"], T0)
    ledger = empty_ledger(COURSE)
    assert kinds(plan(desired, ledger, POLICY, T0).commands) == [(CommandKind.ENROL, "3")]
    after = beside_database(ledger, [], [found("3", suspended=True)], 7, T0)
    held = after.entries["3"]
    assert (held.owned, held.status, held.moodle_user_id, held.moodle_course_id) == (
        False,
        SUSPENDED,
        1003,
        7,
    )
    assert plan(desired, after, POLICY, T0).commands == ()


def test_owned_entries_are_never_changed_by_the_finding() -> None:
    ledger = ledger_of([entry("1", T0), entry("2", T0)])
    after = beside_database(ledger, ["1"], [found("2", "teacher")], 7, T0)
    assert after.entries == ledger.entries


def test_a_foreign_entry_already_held_is_kept_as_it_is() -> None:
    ledger = ledger_of([foreign("2", "editingteacher")])
    after = beside_database(ledger, [], [found("2", "student")], 7, T0 + timedelta(days=1))
    assert after.entries == ledger.entries


# -- compare: the shadow report's classification ------------------------------------------------
def test_each_desired_user_is_in_sync_other_add_or_missing() -> None:
    desired = desired_of(["1", "2", "3", "4", "5"], T0)
    ledger = ledger_of(
        [
            entry("1", T0),  # ours, active in Moodle: in sync
            foreign("2"),  # the Database method's, found at adoption: left alone
            # 3: not in Moodle at all: the plan enrols
            # 4: only the Database method, ledger entry dropped by `cutover`: enrolled beside
            foreign("5", status=SUSPENDED),  # suspended by the Database method: left alone
        ]
    )
    seen = {
        "1": Seen("student", True),
        "2": Seen("student", True),
        "4": Seen("student", True),
        "5": Seen("student", False),
    }
    methods = {
        "1": {"manual": True, "database": True},
        "2": {"database": True},
        "4": {"database": True},
        "5": {"database": False},
    }
    course_plan = plan(desired, ledger, POLICY, T0)
    result = compare(desired, ledger, seen, course_plan, POLICY, methods)
    standing = {i.user: i.standing for i in result.items}
    assert standing == {
        "2": Standing.OTHER,
        "3": Standing.ADD,
        "4": Standing.ADD,
        "5": Standing.MISSING,
    }
    assert (result.desired, result.in_sync, result.beside, result.database_only) == (5, 1, 1, 2)
    item = next(i for i in result.items if i.user == "4")
    assert (item.beside, item.database_only, item.found, item.methods) == (
        True,
        True,
        "active student",
        "database",
    )


def test_present_but_not_desired_is_extra_and_never_the_reconcilers() -> None:
    """What the nightly job keeps that APOGÉE no longer supports, and a teacher's own."""
    desired = retract(desired_of(["1", "2"], T0), "1", T0)
    ledger = ledger_of([foreign("1"), foreign("9", "editingteacher")])
    seen = {"1": Seen("student", True), "9": Seen("editingteacher", True)}
    result = compare(desired, ledger, seen, plan(desired, ledger, POLICY, T0), POLICY)
    assert [(i.user, i.standing) for i in result.items] == [
        ("1", Standing.EXTRA),
        ("2", Standing.ADD),
        ("9", Standing.EXTRA),
    ]
    assert result.database_only is None, "methods not given: not known"
    assert result.count(Standing.SUSPEND) == 0, "foreign enrolments are never removed"


def test_owned_enrolments_no_longer_desired_are_in_grace_due_or_held() -> None:
    users = [str(i) for i in range(1, 11)]
    desired = desired_of(users, T0)
    ledger = apply_all(
        empty_ledger(COURSE), plan(desired, empty_ledger(COURSE), POLICY, T0).commands, T0
    )
    for user in users[:5]:  # a mass deletion in APOGÉE
        desired = retract(desired, user, T0 + timedelta(minutes=1))
    guard = PlanPolicy(grace=timedelta(hours=1), guard=GuardPolicy(course_max_count=3))
    seen = {u: Seen("student", True) for u in users}
    soon = plan(desired, ledger, guard, T0 + timedelta(minutes=2))
    in_grace = compare(desired, ledger, seen, soon, guard)
    assert in_grace.count(Standing.GRACE) == 5 and in_grace.in_sync == 5
    later = plan(desired, ledger, guard, T0 + timedelta(hours=2))
    held = compare(desired, ledger, seen, later, guard)
    assert (held.count(Standing.HELD), held.count(Standing.SUSPEND)) == (5, 0)
    one = retract(desired_of(users, T0), "1", T0)
    due = compare(one, ledger, seen, plan(one, ledger, guard, T0 + timedelta(hours=2)), guard)
    assert (due.count(Standing.SUSPEND), due.count(Standing.GRACE)) == (1, 0)


def test_totals_add_up_the_courses_and_say_when_the_methods_are_unknown() -> None:
    desired = desired_of(["1", "2"], T0)
    ledger = ledger_of([foreign("1")])
    seen = {"1": Seen("student", True)}
    course_plan = plan(desired, ledger, POLICY, T0)
    known = compare(desired, ledger, seen, course_plan, POLICY, {"1": {"database": True}})
    unknown = compare(desired, ledger, seen, course_plan, POLICY)
    assert totals([known, known])["database_only"] == 2
    assert totals([known, known])["desired"] == 4
    assert totals([known, unknown])["database_only"] is None
    assert totals([known])["other"] == 1 and totals([known])["add"] == 1
