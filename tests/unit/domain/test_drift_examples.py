"""What ``drift`` reports and what ``resync`` repairs, one case each (read as documentation)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.enrolment import EnrolmentStatus, EnrolmentTuple
from streams.domain.drift import CourseDrift, DriftKind, Observed, drift, resync
from streams.domain.ledger import empty_ledger
from streams.domain.plan import plan
from streams.domain.policy import PlanPolicy, RemovalMode
from tests.unit.domain.builders import COURSE, assert_, desired_of, entry, ledger_of, retract

T0 = datetime(2026, 9, 1, 8, 0)
POLICY = PlanPolicy(grace=timedelta(hours=1))
ACTIVE, SUSPENDED = EnrolmentStatus.ACTIVE, EnrolmentStatus.SUSPENDED


def seen(user: str, role: str = "student", suspended: bool = False) -> dict[str, Observed]:
    return {user: Observed(user, role, suspended, 1000 + int(user))}


def kinds(result: CourseDrift) -> list[tuple[str, DriftKind]]:
    return [(d.user, d.kind) for d in result.items]


def test_moodle_as_wanted_is_no_drift() -> None:
    result = drift(desired_of(["1"], T0), ledger_of([entry("1", T0)]), seen("1"), POLICY)
    assert result.items == () and result.checked == 1 and result.unmanaged == 0


def test_a_wanted_enrolment_moodle_lost_is_missing() -> None:
    result = drift(desired_of(["1"], T0), ledger_of([entry("1", T0)]), {}, POLICY)
    assert kinds(result) == [("1", DriftKind.MISSING)]
    (item,) = result.items
    assert (item.expected, item.found) == ("active student", "absent")
    assert item.ledger is not None and item.ledger.status is ACTIVE


def test_a_wanted_enrolment_not_applied_yet_is_missing_with_no_ledger_entry() -> None:
    result = drift(desired_of(["1"], T0), empty_ledger(COURSE), {}, POLICY)
    assert kinds(result) == [("1", DriftKind.MISSING)]
    assert result.items[0].ledger is None


def test_a_wanted_enrolment_suspended_by_hand_is_wrong_status() -> None:
    result = drift(
        desired_of(["1"], T0), ledger_of([entry("1", T0)]), seen("1", suspended=True), POLICY
    )
    assert kinds(result) == [("1", DriftKind.WRONG_STATUS)]
    assert result.items[0].found == "suspended student"


def test_a_role_changed_by_hand_is_wrong_role() -> None:
    result = drift(desired_of(["1"], T0), ledger_of([entry("1", T0)]), seen("1", "teacher"), POLICY)
    assert kinds(result) == [("1", DriftKind.WRONG_ROLE)]


def test_a_suspension_undone_by_hand_is_wrong_status() -> None:
    gone = retract(desired_of(["1"], T0), "1", T0)
    result = drift(gone, ledger_of([entry("1", T0, SUSPENDED)]), seen("1"), POLICY)
    assert kinds(result) == [("1", DriftKind.WRONG_STATUS)]
    assert result.items[0].expected == "suspended student"


def test_an_unenrolment_undone_by_hand_is_extra() -> None:
    gone = retract(desired_of(["1"], T0), "1", T0)
    result = drift(gone, ledger_of([entry("1", T0, EnrolmentStatus.UNENROLLED)]), seen("1"), POLICY)
    assert kinds(result) == [("1", DriftKind.EXTRA)]


def test_a_removal_still_in_its_grace_window_is_not_drift_whatever_moodle_shows() -> None:
    gone = retract(desired_of(["1", "2", "3"], T0), "1", T0)
    gone = retract(retract(gone, "2", T0), "3", T0)
    ledger = ledger_of([entry("1", T0), entry("2", T0), entry("3", T0)])
    observed = {**seen("1"), **seen("2", suspended=True)}  # 3: Moodle already dropped it
    assert drift(gone, ledger, observed, POLICY).items == ()


def test_a_suspension_moodle_no_longer_holds_is_not_drift() -> None:
    gone = retract(desired_of(["1"], T0), "1", T0)
    assert drift(gone, ledger_of([entry("1", T0, SUSPENDED)]), {}, POLICY).items == ()


def test_foreign_enrolments_are_never_drift() -> None:
    ledger = ledger_of([entry("1", T0, owned=False), entry("2", T0, SUSPENDED, owned=False)])
    wanted = desired_of(["1", "2"], T0)
    observed = {**seen("1", "teacher"), **seen("2")}
    assert drift(wanted, ledger, observed, POLICY).items == ()
    assert drift(wanted, ledger, {}, POLICY).items == ()


def test_an_enrolment_nobody_wants_or_made_is_unmanaged_not_drift() -> None:
    result = drift(desired_of([], T0), empty_ledger(COURSE), seen("9"), POLICY)
    assert result.items == () and (result.checked, result.unmanaged) == (1, 1)


def test_the_highest_present_role_is_the_one_expected() -> None:
    desired = assert_(desired_of(["1"], T0), "1", T0, role="editingteacher", elp="INF102")
    result = drift(desired, ledger_of([entry("1", T0)]), seen("1", "student"), POLICY)
    assert [(d.kind, d.expected) for d in result.items] == [
        (DriftKind.WRONG_ROLE, "active editingteacher")
    ]


def test_counts_by_kind() -> None:
    desired = desired_of(["1", "2", "3"], T0)
    ledger = ledger_of([entry("1", T0), entry("2", T0), entry("3", T0)])
    observed = {**seen("2", suspended=True), **seen("3", suspended=True)}
    result = drift(desired, ledger, observed, POLICY)
    assert (result.count(DriftKind.MISSING), result.count(DriftKind.WRONG_STATUS)) == (1, 2)
    assert result.count(DriftKind.EXTRA) == 0


# -- repair: the ledger takes what Moodle showed, and plan() does the rest ----------------------
def test_resync_of_a_lost_enrolment_drops_it_so_the_plan_enrols_again() -> None:
    desired, ledger = desired_of(["1"], T0), ledger_of([entry("1", T0)])
    fixed = resync(ledger, {}, ["1"], T0 + timedelta(hours=2))
    assert "1" not in fixed.entries
    (command,) = plan(desired, fixed, POLICY, T0 + timedelta(hours=2)).commands
    assert (command.kind.value, command.user) == ("enrol", "1")


def test_resync_of_a_suspension_by_hand_makes_the_plan_reactivate() -> None:
    desired, ledger = desired_of(["1"], T0), ledger_of([entry("1", T0)])
    now = T0 + timedelta(hours=2)
    fixed = resync(ledger, seen("1", suspended=True), ["1"], now)
    held = fixed.entries["1"]
    assert (held.status, held.enrolment.suspend, held.since, held.owned) == (
        SUSPENDED,
        True,
        now,
        True,
    )
    assert held.moodle_user_id == 1001
    (command,) = plan(desired, fixed, POLICY, now).commands
    assert command.kind.value == "reactivate"


def test_resync_of_a_role_changed_by_hand_makes_the_plan_change_it_back() -> None:
    desired, ledger = desired_of(["1"], T0), ledger_of([entry("1", T0)])
    fixed = resync(ledger, seen("1", "teacher"), ["1"], T0)
    (command,) = plan(desired, fixed, POLICY, T0).commands
    assert (command.kind.value, command.previous_role, command.enrolment.role) == (
        "change_role",
        "teacher",
        "student",
    )


def test_resync_of_an_undone_suspension_suspends_again_after_the_grace_window() -> None:
    gone = retract(desired_of(["1"], T0), "1", T0)
    now = T0 + timedelta(days=1)
    fixed = resync(ledger_of([entry("1", T0, SUSPENDED)]), seen("1"), ["1"], now)
    assert fixed.entries["1"].status is ACTIVE
    assert plan(gone, fixed, POLICY, now).commands == ()  # someone did it on purpose, maybe
    (command,) = plan(gone, fixed, POLICY, now + POLICY.grace).commands
    assert command.kind.value == "suspend"


def test_resync_of_an_undone_unenrolment_unenrols_again_under_that_policy() -> None:
    policy = PlanPolicy(grace=timedelta(0), removal=RemovalMode.UNENROL)
    gone = retract(desired_of(["1"], T0), "1", T0)
    ledger = ledger_of([entry("1", T0, EnrolmentStatus.UNENROLLED)])
    fixed = resync(ledger, seen("1"), ["1"], T0)
    (command,) = plan(gone, fixed, policy, T0).commands
    assert command.kind.value == "unenrol"


def test_resync_never_touches_a_foreign_entry_nor_invents_one() -> None:
    ledger = ledger_of([entry("1", T0, owned=False)])
    fixed = resync(ledger, {**seen("1", suspended=True), **seen("2")}, ["1", "2"], T0)
    assert fixed.entries == ledger.entries


def test_resync_keeps_the_dates_and_leaves_an_entry_as_moodle_shows_it_unchanged() -> None:
    dated = entry("1", T0)
    dated = type(dated)(
        dated.course, "1", EnrolmentTuple("student", 100, 200), ACTIVE, True, T0, None, 7
    )
    ledger = ledger_of([dated])
    assert resync(ledger, seen("1"), ["1"], T0 + timedelta(days=1)).entries["1"] is dated
    fixed = resync(ledger, seen("1", suspended=True), ["1"], T0)
    assert fixed.entries["1"].enrolment == EnrolmentTuple("student", 100, 200, True)


def test_users_not_named_are_left_alone() -> None:
    ledger = ledger_of([entry("1", T0), entry("2", T0)])
    fixed = resync(ledger, {}, ["1"], T0)
    assert set(fixed.entries) == {"2"}


# -- exactly what is reported, and the loops go on past what they skip --------------------------
def test_each_drift_names_course_user_kind_expectation_finding_and_ledger() -> None:
    held = {u: entry(u, T0) for u in ("2", "3", "4")}
    held["5"] = entry("5", T0, SUSPENDED)
    held["6"] = entry("6", T0, EnrolmentStatus.UNENROLLED)
    desired = retract(retract(desired_of(["2", "3", "4", "5", "6"], T0), "5", T0), "6", T0)
    observed = {
        **seen("3", suspended=True),
        **seen("4", "teacher"),
        **seen("5"),
        **seen("6", suspended=True),
    }
    result = drift(desired, ledger_of(held.values()), observed, POLICY)
    assert result.course == COURSE
    assert [(d.course, d.user, d.kind, d.expected, d.found, d.ledger) for d in result.items] == [
        (COURSE, "2", DriftKind.MISSING, "active student", "absent", held["2"]),
        (COURSE, "3", DriftKind.WRONG_STATUS, "active student", "suspended student", held["3"]),
        (COURSE, "4", DriftKind.WRONG_ROLE, "active student", "active teacher", held["4"]),
        (COURSE, "5", DriftKind.WRONG_STATUS, "suspended student", "active student", held["5"]),
        (COURSE, "6", DriftKind.EXTRA, "absent", "suspended student", held["6"]),
    ]


def test_a_foreign_user_first_does_not_stop_the_others_being_checked() -> None:
    ledger = ledger_of([entry("1", T0, owned=False), entry("2", T0)])
    result = drift(desired_of(["1", "2"], T0), ledger, {}, POLICY)
    assert kinds(result) == [("2", DriftKind.MISSING)]


def test_every_unmanaged_enrolment_is_counted() -> None:
    result = drift(desired_of([], T0), empty_ledger(COURSE), {**seen("8"), **seen("9")}, POLICY)
    assert result.unmanaged == 2


def test_desired_and_ledger_of_two_courses_are_not_compared() -> None:
    with pytest.raises(ValueError, match="compared with ledger"):
        drift(desired_of(["1"], T0, course="2026-INF102"), empty_ledger(COURSE), {}, POLICY)


def test_resync_goes_on_past_users_it_leaves_alone() -> None:
    ledger = ledger_of([entry("1", T0, owned=False), entry("2", T0), entry("3", T0)])
    observed = {**seen("1", suspended=True), **seen("2"), **seen("3", suspended=True)}
    fixed = resync(ledger, observed, ["0", "1", "2", "3"], T0 + timedelta(hours=1))
    assert fixed.entries["1"] is ledger.entries["1"] and fixed.entries["2"] is ledger.entries["2"]
    assert fixed.entries["3"].status is SUSPENDED


def test_resync_drops_a_lost_enrolment_and_goes_on_to_the_next() -> None:
    ledger = ledger_of([entry("1", T0), entry("2", T0)])
    fixed = resync(ledger, seen("2", suspended=True), ["1", "2"], T0 + timedelta(hours=1))
    assert "1" not in fixed.entries and fixed.entries["2"].status is SUSPENDED
