"""Administrative-enrolment cohorts: stage facts → one cohort per stage version and year."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.facts import FactKind, MembershipFact
from streams.domain.cohorts import COHORT_ROLE, cohort_mapping, cohort_policy
from streams.domain.desired import CourseChange, apply_change, empty_desired
from streams.domain.ledger import apply_all, empty_ledger
from streams.domain.mapping import targets
from streams.domain.plan import plan
from streams.domain.policy import GuardPolicy, PlanPolicy, RemovalMode

T0 = datetime(2026, 9, 1, 8, 0)
COHORT = "IA-2026-L1INF-1"


def stage(user: str, year: str = "2026", vet: int = 1) -> MembershipFact:
    return MembershipFact(user, FactKind.STAGE, year, "L1INF", vet, cod_ind=int(user))


def test_a_stage_fact_names_its_cohort_and_element_facts_name_none() -> None:
    mapping = cohort_mapping()
    assert targets(stage("1"), mapping) == ((COHORT, COHORT_ROLE),)
    assert targets(stage("1", "2027", 2), mapping) == (("IA-2027-L1INF-2", COHORT_ROLE),)
    element = MembershipFact("1", FactKind.ELEMENT, "2026", "L1INF", 1, "INF101")
    assert targets(element, mapping) == ()


def test_a_template_without_the_year_is_refused() -> None:
    with pytest.raises(ValueError, match="cod_anu"):
        cohort_mapping("IA-{cod_etp}-{cod_vrs_vet}")


def test_cohort_policy_removes_members_and_keeps_the_sites_grace_and_guard() -> None:
    guard = GuardPolicy(course_max_count=3)
    site = PlanPolicy(grace=timedelta(hours=2), timestart=5, timeend=9, guard=guard)
    policy = cohort_policy(site)
    assert policy.removal is RemovalMode.UNENROL and policy.role_precedence == (COHORT_ROLE,)
    assert (policy.grace, policy.guard) == (site.grace, site.guard)
    assert (policy.timestart, policy.timeend) == (0, 0)


def test_members_join_at_once_and_leave_after_the_grace_window() -> None:
    policy = cohort_policy(PlanPolicy(grace=timedelta(hours=1)))
    desired = empty_desired(COHORT)
    for user in ("1", "2"):
        desired = apply_change(desired, CourseChange(COHORT, COHORT_ROLE, stage(user), True), T0)
    joined = plan(desired, empty_ledger(COHORT), policy, T0).commands
    assert [(c.kind.value, c.user, c.enrolment.role) for c in joined] == [
        ("enrol", "1", COHORT_ROLE),
        ("enrol", "2", COHORT_ROLE),
    ]
    ledger = apply_all(empty_ledger(COHORT), joined, T0)
    desired = apply_change(desired, CourseChange(COHORT, COHORT_ROLE, stage("1"), False), T0)
    assert plan(desired, ledger, policy, T0 + timedelta(minutes=59)).commands == ()
    (leave,) = plan(desired, ledger, policy, T0 + timedelta(hours=1)).commands
    assert (leave.kind.value, leave.user) == ("unenrol", "1")
