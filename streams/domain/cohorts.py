"""Administrative-enrolment cohorts: one Moodle cohort per stage version and year.

A student's *stage fact* (a valid administrative enrolment in a stage version, see
:mod:`~streams.domain.derive`) makes them a member of that stage version's cohort for that
year; Moodle's cohort sync then enrols the cohort wherever a course uses it. Cohorts reuse
the course machinery: the mapping routes stage facts to a cohort idnumber instead of a
course, the desired state holds the members, and ``plan`` under :func:`cohort_policy` adds
members at once and removes them after the grace window and through the mass-removal guard
(a cohort removal unenrols the student from every course synced with it: the guard matters
even more here).

>>> from schemas.facts import FactKind, MembershipFact
>>> fact = MembershipFact("2100001", FactKind.STAGE, "2026", "L1INF", 1)
>>> from streams.domain.mapping import targets
>>> targets(fact, cohort_mapping("IA-{cod_anu}-{cod_etp}-{cod_vrs_vet}"))
(('IA-2026-L1INF-1', 'member'),)
"""

from __future__ import annotations

from dataclasses import replace

from streams.domain.mapping import CourseMapping, build_mapping
from streams.domain.policy import PlanPolicy, RemovalMode

__all__ = ["COHORT_ROLE", "DEFAULT_TEMPLATE", "cohort_mapping", "cohort_policy"]

COHORT_ROLE = "member"
DEFAULT_TEMPLATE = "IA-{cod_anu}-{cod_etp}-{cod_vrs_vet}"


def cohort_mapping(template: str = DEFAULT_TEMPLATE) -> CourseMapping:
    """Stage facts → the cohort ``template`` names (it must hold the year); element facts →
    no cohort."""
    return build_mapping((), element_template=None, stage_template=template, role=COHORT_ROLE)


def cohort_policy(policy: PlanPolicy) -> PlanPolicy:
    """The site's grace window and guard; a removal takes the member out of the cohort (no
    suspended state for a cohort member), and membership carries no dates."""
    return replace(
        policy,
        removal=RemovalMode.UNENROL,
        role_precedence=(COHORT_ROLE,),
        timestart=0,
        timeend=0,
    )
