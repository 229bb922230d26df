"""Course mapping: a fact → the (course idnumber, role) pairs it supports.

Default: element facts go to ``{cod_anu}-{cod_elp}`` as ``student``; stage facts go
nowhere unless a stage template or a rule says so. Explicit rules override the default
for one element or one stage version (optionally one year): one element to several
courses, several elements to one course, or an element to none. Every course key
contains the year (enforced by the rule model), so a new year never removes last
year's enrolments.

>>> from schemas.facts import FactKind, MembershipFact
>>> fact = MembershipFact("2100001", FactKind.ELEMENT, "2026", "L1INF", 1, "INF101")
>>> targets(fact, build_mapping(()))
(('2026-INF101', 'student'),)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from schemas.facts import FactKind, MembershipFact
from schemas.mapping import CourseMappingRule, check_template

__all__ = ["CourseMapping", "Target", "build_mapping", "targets"]

Target = tuple[str, str]
"""(course idnumber, role)."""


@dataclass(frozen=True, slots=True)
class CourseMapping:
    element_template: str | None = "{cod_anu}-{cod_elp}"
    stage_template: str | None = None
    role: str = "student"
    by_element: Mapping[str, tuple[CourseMappingRule, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    by_stage: Mapping[tuple[str, int], tuple[CourseMappingRule, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


def build_mapping(
    rules: Iterable[CourseMappingRule],
    element_template: str | None = "{cod_anu}-{cod_elp}",
    stage_template: str | None = None,
    role: str = "student",
) -> CourseMapping:
    """Index rules by element and by stage version; templates are checked for the year."""
    for template in (element_template, stage_template):
        if template is not None and "cod_anu" not in check_template(template):
            raise ValueError(f"default template {template!r} must contain {{cod_anu}}")
    by_element: dict[str, tuple[CourseMappingRule, ...]] = {}
    by_stage: dict[tuple[str, int], tuple[CourseMappingRule, ...]] = {}
    for rule in sorted(rules, key=lambda r: r.rule_id):
        if rule.cod_elp is not None:
            by_element[rule.cod_elp] = (*by_element.get(rule.cod_elp, ()), rule)
        elif rule.cod_etp is not None and rule.cod_vrs_vet is not None:
            key = (rule.cod_etp, rule.cod_vrs_vet)
            by_stage[key] = (*by_stage.get(key, ()), rule)
    return CourseMapping(element_template, stage_template, role, by_element, by_stage)


def targets(fact: MembershipFact, mapping: CourseMapping) -> tuple[Target, ...]:
    """The courses and roles a fact supports, sorted, without duplicates."""
    if fact.kind is FactKind.MANUAL:
        assert fact.course is not None
        return ((fact.course, fact.role or mapping.role),)
    rules = _rules_for(fact, mapping)
    found = {(_format(t.course, fact), t.role) for rule in rules for t in rule.targets}
    default = _default(fact, mapping)
    if default is not None and all(rule.keep_default for rule in rules):
        found.add((_format(default, fact), mapping.role))
    return tuple(sorted(found))


def _rules_for(fact: MembershipFact, mapping: CourseMapping) -> tuple[CourseMappingRule, ...]:
    if fact.kind is FactKind.ELEMENT:
        candidates = mapping.by_element.get(fact.cod_elp or "", ())
    else:
        candidates = mapping.by_stage.get((fact.cod_etp or "", fact.cod_vrs_vet or 0), ())
    return tuple(rule for rule in candidates if rule.cod_anu in (None, fact.cod_anu))


def _default(fact: MembershipFact, mapping: CourseMapping) -> str | None:
    return mapping.element_template if fact.kind is FactKind.ELEMENT else mapping.stage_template


def _format(template: str, fact: MembershipFact) -> str:
    return template.format(
        cod_anu=fact.cod_anu,
        cod_elp=fact.cod_elp or "",
        cod_etp=fact.cod_etp or "",
        cod_vrs_vet="" if fact.cod_vrs_vet is None else fact.cod_vrs_vet,
    )
