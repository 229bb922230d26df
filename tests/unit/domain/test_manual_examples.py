"""Manual facts (CSV batches, cohort rules): their own course, role and dates, one case each."""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.enrolment import EnrolmentTuple
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from streams.domain.desired import CourseChange, CourseDesired, apply_change, empty_desired, route
from streams.domain.fold import FactAsserted
from streams.domain.ledger import apply_all, empty_ledger
from streams.domain.mapping import build_mapping
from streams.domain.plan import plan
from streams.domain.policy import PlanPolicy
from tests.unit.domain.builders import COURSE, fact

T0 = datetime(2026, 9, 1, 8, 0)
POLICY = PlanPolicy(grace=timedelta(hours=1))


def manual(
    user: str = "1",
    role: str = "editingteacher",
    start: int | None = None,
    end: int | None = None,
    line: int = 2,
    origin: str = "csv",
) -> MembershipFact:
    ref = SourceRef("CSV", f"list.csv:{line}", line, "batch-1")
    return MembershipFact(
        user,
        FactKind.MANUAL,
        "",
        course=COURSE,
        role=role,
        origin=origin,
        provenance=(ref,),
        timestart=start,
        timeend=end,
    )


def add(
    desired: CourseDesired, f: MembershipFact, asserted: bool = True, at: datetime = T0
) -> CourseDesired:
    return apply_change(desired, CourseChange(COURSE, f.role or "student", f, asserted), at)


def test_a_manual_fact_goes_to_its_own_course_and_role_whatever_the_mapping() -> None:
    (change,) = route([FactAsserted(manual())], build_mapping(()))
    assert (change.course, change.role) == (COURSE, "editingteacher")


def test_dates_and_provenance_are_not_part_of_a_facts_identity() -> None:
    assert manual(start=1, line=2) == manual(start=5, end=9, line=7)
    assert manual(origin="csv") != manual(origin="csv:tutors")


def test_a_manual_enrolment_is_sent_with_its_dates() -> None:
    desired = add(empty_desired(COURSE), manual(start=1000, end=2000))
    (command,) = plan(desired, empty_ledger(COURSE), POLICY, T0).commands
    assert command.enrolment == EnrolmentTuple("editingteacher", 1000, 2000, False)


def test_the_same_line_with_other_dates_replaces_them_and_the_tuple_is_sent_again() -> None:
    desired = add(empty_desired(COURSE), manual(start=1000, end=2000))
    first = plan(desired, empty_ledger(COURSE), POLICY, T0).commands
    ledger = apply_all(empty_ledger(COURSE), first, T0)
    redated = add(desired, manual(start=1000, end=3000, line=9))
    entry = redated.entries[("1", "editingteacher")]
    assert len(entry.facts) == 1 and entry.facts[0].timeend == 3000
    assert entry.facts[0].provenance[0].key == "list.csv:9"  # the new line is the lineage
    (command,) = plan(redated, ledger, POLICY, T0).commands
    assert command.enrolment.timeend == 3000 and command.kind.value == "enrol"


def test_asserting_the_same_fact_with_the_same_dates_changes_nothing() -> None:
    desired = add(empty_desired(COURSE), manual(start=1000, end=2000))
    assert add(desired, manual(start=1000, end=2000, line=5)) is desired


def test_a_remove_line_retracts_what_was_added_whatever_its_dates() -> None:
    desired = add(empty_desired(COURSE), manual(start=1000, end=2000))
    gone = add(desired, manual(line=8), asserted=False, at=T0 + timedelta(minutes=5))
    entry = gone.entries[("1", "editingteacher")]
    assert not entry.present and entry.since == T0 + timedelta(minutes=5)
    assert entry.withdrawn[0].provenance[0].key == "list.csv:8"


def test_a_dated_fact_beside_an_apogee_fact_keeps_the_enrolment_open_ended() -> None:
    desired = add(empty_desired(COURSE), manual(role="student", start=1000, end=2000))
    desired = apply_change(desired, CourseChange(COURSE, "student", fact("1"), True), T0)
    (command,) = plan(desired, empty_ledger(COURSE), POLICY, T0).commands
    assert command.enrolment == EnrolmentTuple("student", 0, 0, False)


def test_two_dated_facts_give_the_widest_window() -> None:
    desired = add(empty_desired(COURSE), manual(start=1000, end=2000))
    desired = add(desired, manual(start=500, end=1500, origin="csv:tutors"))
    (command,) = plan(desired, empty_ledger(COURSE), POLICY, T0).commands
    assert (command.enrolment.timestart, command.enrolment.timeend) == (500, 2000)


def test_an_open_end_wins_over_a_date_and_a_missing_date_takes_the_policys() -> None:
    policy = PlanPolicy(timestart=700, timeend=0)
    desired = add(empty_desired(COURSE), manual(start=None, end=2000))
    (command,) = plan(desired, empty_ledger(COURSE), policy, T0).commands
    assert (command.enrolment.timestart, command.enrolment.timeend) == (700, 2000)
    desired = add(desired, manual(start=1000, end=0, origin="csv:b"))
    (command,) = plan(desired, empty_ledger(COURSE), policy, T0).commands
    assert (command.enrolment.timestart, command.enrolment.timeend) == (700, 0)


def test_a_start_alone_is_sent_with_the_policys_end() -> None:
    policy = PlanPolicy(timestart=700, timeend=0)
    desired = add(empty_desired(COURSE), manual(start=1000, end=None))
    (command,) = plan(desired, empty_ledger(COURSE), policy, T0).commands
    assert (command.enrolment.timestart, command.enrolment.timeend) == (1000, 0)


def test_an_open_start_wins_over_a_date() -> None:
    desired = add(empty_desired(COURSE), manual(start=0, end=2000))
    desired = add(desired, manual(start=1000, end=3000, origin="csv:b"))
    (command,) = plan(desired, empty_ledger(COURSE), POLICY, T0).commands
    assert (command.enrolment.timestart, command.enrolment.timeend) == (0, 3000)
