"""Desired state per course: entries and their facts, withdrawals, roles (read as documentation)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.facts import FactKind, MembershipFact
from streams.domain.desired import (
    CourseChange,
    CourseDesired,
    apply_change,
    apply_changes,
    empty_desired,
    forget_withdrawn,
    present,
    route,
)
from streams.domain.fold import FactAsserted, FactRetracted
from streams.domain.mapping import build_mapping
from streams.domain.policy import PlanPolicy
from tests.unit.domain.builders import COURSE, fact

T0 = datetime(2026, 9, 1, 8, 0)
HOUR = timedelta(hours=1)
PRECEDENCE = PlanPolicy().role_precedence
INF101, INF102 = fact("1", "INF101"), fact("1", "INF102")
V1, V2 = fact("1", vrs=1), fact("1", vrs=2)  # one element through two stage versions


def change(f: MembershipFact, asserted: bool = True, role: str = "student") -> CourseChange:
    return CourseChange(COURSE, role, f, asserted)


def played(*steps: tuple[CourseChange, datetime], batched: bool = False) -> CourseDesired:
    """The desired state after the changes, one call each or one batch per step."""
    desired = empty_desired(COURSE)
    for step, at in steps:
        desired = apply_changes(desired, [step], at) if batched else apply_change(desired, step, at)
    return desired


BOTH = pytest.mark.parametrize("batched", [False, True], ids=["one-by-one", "batched"])


@BOTH
def test_a_new_entry_is_present_since_its_first_fact(batched: bool) -> None:
    desired = played((change(INF101), T0), batched=batched)
    (entry,) = desired.entries.values()
    assert (entry.course, entry.user, entry.role, entry.facts, entry.since) == (
        COURSE,
        "1",
        "student",
        (INF101,),
        T0,
    )
    assert entry.present and entry.withdrawn == ()


@BOTH
def test_a_second_fact_keeps_the_first_and_the_since(batched: bool) -> None:
    desired = played((change(INF101), T0), (change(INF102), T0 + HOUR), batched=batched)
    (entry,) = desired.entries.values()
    assert entry.facts == (INF101, INF102) and entry.since == T0


@BOTH
@pytest.mark.parametrize(("first", "second"), [(V1, V2), (INF101, INF102)], ids=["vet", "elp"])
def test_retracting_one_of_several_facts_keeps_the_entry(
    batched: bool, first: MembershipFact, second: MembershipFact
) -> None:
    desired = played(
        (change(first), T0),
        (change(second), T0),
        (change(first, asserted=False), T0 + HOUR),
        batched=batched,
    )
    (entry,) = desired.entries.values()
    assert entry.present and entry.facts == (second,)
    assert entry.since == T0 and entry.withdrawn == ()


def test_two_stage_versions_of_one_element_are_two_facts() -> None:
    assert V1 != V2
    desired = played((change(V1), T0), (change(V2), T0))
    assert desired.entries[("1", "student")].facts == (V1, V2)


@BOTH
def test_the_last_retraction_leaves_the_entry_absent_with_when_and_why(batched: bool) -> None:
    desired = played(
        (change(INF101), T0),
        (change(INF102), T0),
        (change(INF102, asserted=False), T0 + HOUR),
        (change(INF101, asserted=False), T0 + 2 * HOUR),
        batched=batched,
    )
    (entry,) = desired.entries.values()
    assert not entry.present and entry.facts == ()
    assert entry.since == T0 + 2 * HOUR and entry.withdrawn == (INF101,)


@BOTH
def test_coming_back_restarts_since_and_clears_the_withdrawn_facts(batched: bool) -> None:
    desired = played(
        (change(INF101), T0),
        (change(INF101, asserted=False), T0 + HOUR),
        (change(INF102), T0 + 2 * HOUR),
        batched=batched,
    )
    (entry,) = desired.entries.values()
    assert entry.present and entry.facts == (INF102,)
    assert entry.since == T0 + 2 * HOUR and entry.withdrawn == ()


def test_a_duplicate_assertion_changes_nothing() -> None:
    desired = played((change(INF101), T0))
    assert apply_change(desired, change(INF101), T0 + HOUR) is desired
    assert apply_changes(desired, [change(INF101)], T0 + HOUR).entries == desired.entries


def test_a_stray_retraction_is_a_no_op() -> None:
    empty = empty_desired(COURSE)
    assert apply_change(empty, change(INF101, asserted=False), T0) is empty
    assert apply_changes(empty, [change(INF101, asserted=False)], T0).entries == {}
    desired = played((change(INF101), T0))  # present, but not because of INF102
    assert apply_change(desired, change(INF102, asserted=False), T0 + HOUR) is desired


@BOTH
def test_a_duplicate_retraction_does_not_restart_the_grace_window(batched: bool) -> None:
    withdrawn = played((change(INF101), T0), (change(INF101, asserted=False), T0 + HOUR))
    again = played(
        (change(INF101), T0),
        (change(INF101, asserted=False), T0 + HOUR),
        (change(INF101, asserted=False), T0 + 2 * HOUR),
        batched=batched,
    )
    assert again.entries == withdrawn.entries
    assert again.entries[("1", "student")].since == T0 + HOUR


def test_a_change_for_another_course_is_refused() -> None:
    other = CourseChange("2026-OTHER", "student", INF101, True)
    with pytest.raises(ValueError, match="change for '2026-OTHER' applied to '2026-INF101'"):
        apply_change(empty_desired(COURSE), other, T0)
    with pytest.raises(ValueError, match="change for '2026-OTHER' applied to '2026-INF101'"):
        apply_changes(empty_desired(COURSE), [other], T0)


def test_a_batch_equals_the_same_changes_one_by_one() -> None:
    steps = [change(INF101), change(INF102), change(INF101, False), change(fact("2")), change(V2)]
    one_by_one = empty_desired(COURSE)
    for step in steps:
        one_by_one = apply_change(one_by_one, step, T0)
    assert apply_changes(empty_desired(COURSE), steps, T0) == one_by_one


# -- roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [("student", "teacher"), ("teacher", "student")])
def test_the_highest_role_wins_whichever_fact_came_first(order: tuple[str, str]) -> None:
    desired = played(*((change(INF101, role=role), T0) for role in order))
    assert present(desired, PRECEDENCE)["1"].role == "teacher"


@pytest.mark.parametrize("order", [("observer", "student"), ("student", "observer")])
def test_a_role_outside_the_precedence_ranks_after_every_known_one(order: tuple[str, str]) -> None:
    desired = played(*((change(INF101, role=role), T0) for role in order))
    assert present(desired, PRECEDENCE)["1"].role == "student"


@pytest.mark.parametrize("order", [("zoo", "aide"), ("aide", "zoo")])
def test_unknown_roles_among_themselves_rank_by_name(order: tuple[str, str]) -> None:
    desired = played(*((change(INF101, role=role), T0) for role in order))
    assert present(desired, PRECEDENCE)["1"].role == "aide"


def test_only_present_entries_and_each_user_once() -> None:
    desired = played(
        (change(INF101, role="teacher"), T0),
        (change(INF101, asserted=False, role="teacher"), T0),
        (change(INF101), T0),
        (change(fact("2")), T0),
        (change(fact("3")), T0),
        (change(fact("3"), asserted=False), T0),
    )
    chosen = present(desired, PRECEDENCE)
    assert {user: e.role for user, e in chosen.items()} == {"1": "student", "2": "student"}


# -- routing and memory ---------------------------------------------------------------------


def test_route_fans_each_effect_out_to_its_courses() -> None:
    stage = MembershipFact("1", FactKind.STAGE, "2026", "L1INF", 1)
    mapping = build_mapping((), stage_template="{cod_anu}-{cod_etp}")
    effects = [FactAsserted(INF101), FactRetracted(INF102), FactAsserted(stage)]
    assert route(effects, mapping) == (
        CourseChange("2026-INF101", "student", INF101, True),
        CourseChange("2026-INF102", "student", INF102, False),
        CourseChange("2026-L1INF", "student", stage, True),
    )


def test_forget_withdrawn_drops_only_entries_withdrawn_before_the_cut() -> None:
    desired = played(
        (change(fact("1")), T0),
        (change(fact("1"), asserted=False), T0 + HOUR),  # withdrawn before the cut
        (change(fact("2")), T0),
        (change(fact("2"), asserted=False), T0 + 2 * HOUR),  # withdrawn exactly at it
        (change(fact("3")), T0),  # present, however old
    )
    forgotten = forget_withdrawn(desired, T0 + 2 * HOUR)
    assert forgotten.course == COURSE
    assert set(forgotten.entries) == {("2", "student"), ("3", "student")}
    assert forgotten.entries[("2", "student")] == desired.entries[("2", "student")]


def test_forget_withdrawn_returns_the_same_state_when_nothing_is_old() -> None:
    desired = played((change(INF101), T0), (change(fact("2")), T0))
    assert forget_withdrawn(desired, T0 + 10 * HOUR) is desired
