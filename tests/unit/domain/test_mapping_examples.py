"""Course mapping: default template, overrides, one→many, many→one, the year in every key."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.facts import FactKind, MembershipFact
from schemas.mapping import CourseMappingRule, CourseTarget
from streams.domain.mapping import build_mapping, targets


def element(elp: str, anu: str = "2026") -> MembershipFact:
    return MembershipFact("21000001", FactKind.ELEMENT, anu, "L1INF", 1, elp)


def stage(etp: str = "L1INF", vrs: int = 1) -> MembershipFact:
    return MembershipFact("21000001", FactKind.STAGE, "2026", etp, vrs)


def rule(rule_id: str, *courses: str, **match: object) -> CourseMappingRule:
    """A rule as it arrives from the compacted rules topic (JSON)."""
    targets = [{"course": c} for c in courses]
    return CourseMappingRule.model_validate_json(
        json.dumps({"rule_id": rule_id, "targets": targets, **match})
    )


def test_default_template_is_year_and_element() -> None:
    assert targets(element("INF101"), build_mapping(())) == (("2026-INF101", "student"),)


def test_stage_facts_map_nowhere_by_default() -> None:
    assert targets(stage(), build_mapping(())) == ()


def test_one_element_to_several_courses() -> None:
    mapping = build_mapping([rule("r1", "{cod_anu}-MATHS-A", "{cod_anu}-MATHS-B", cod_elp="MAT1")])
    assert targets(element("MAT1"), mapping) == (
        ("2026-MATHS-A", "student"),
        ("2026-MATHS-B", "student"),
    )


def test_several_elements_to_one_course() -> None:
    mapping = build_mapping(
        [
            rule("r1", "{cod_anu}-SHARED", cod_elp="MAT1"),
            rule("r2", "{cod_anu}-SHARED", cod_elp="MAT2"),
        ]
    )
    assert targets(element("MAT1"), mapping) == targets(element("MAT2"), mapping)


def test_an_override_can_keep_the_default_too() -> None:
    mapping = build_mapping([rule("r1", "{cod_anu}-EXTRA", cod_elp="MAT1", keep_default=True)])
    assert targets(element("MAT1"), mapping) == (
        ("2026-EXTRA", "student"),
        ("2026-MAT1", "student"),
    )


def test_an_override_with_no_target_excludes_the_element() -> None:
    assert targets(element("STAGE"), build_mapping([rule("r1", cod_elp="STAGE")])) == ()


def test_a_stage_version_rule_maps_every_student_of_that_stage_version() -> None:
    mapping = build_mapping(
        [rule("r1", "{cod_anu}-{cod_etp}-V{cod_vrs_vet}", cod_etp="L1INF", cod_vrs_vet=1)]
    )
    assert targets(stage(), mapping) == (("2026-L1INF-V1", "student"),)
    assert targets(stage(vrs=2), mapping) == ()


def test_a_rule_pinned_to_a_year_applies_to_that_year_only() -> None:
    mapping = build_mapping([rule("r1", "OLD-MATHS", cod_elp="MAT1", cod_anu="2025")])
    assert targets(element("MAT1", "2025"), mapping) == (("OLD-MATHS", "student"),)
    assert targets(element("MAT1", "2026"), mapping) == (("2026-MAT1", "student"),)


def test_a_target_role_other_than_student() -> None:
    target = CourseTarget(course="{cod_anu}-TUTORS", role="teacher")
    mapping = build_mapping([CourseMappingRule(rule_id="r1", cod_elp="TUT", targets=(target,))])
    assert targets(element("TUT"), mapping) == (("2026-TUTORS", "teacher"),)


def test_a_manual_fact_names_its_course_and_role() -> None:
    fact = MembershipFact(
        "T1", FactKind.MANUAL, "2026", course="2026-X", role="editingteacher", origin="csv:batch-7"
    )
    assert targets(fact, build_mapping(())) == (("2026-X", "editingteacher"),)


def test_a_target_without_the_year_is_refused() -> None:
    with pytest.raises(ValidationError, match="lacks \\{cod_anu\\}"):
        rule("r1", "MATHS-SHARED", cod_elp="MAT1")


def test_a_default_template_without_the_year_is_refused() -> None:
    with pytest.raises(ValueError, match="must contain"):
        build_mapping((), element_template="{cod_elp}")


def test_a_rule_names_an_element_or_a_stage_version() -> None:
    with pytest.raises(ValidationError, match="either cod_elp"):
        rule("r1", "{cod_anu}-X")
    with pytest.raises(ValidationError, match="unknown placeholder"):
        rule("r1", "{cod_anu}-{cod_dip}", cod_elp="MAT1")
