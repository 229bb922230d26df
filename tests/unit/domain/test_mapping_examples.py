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


def test_two_rules_for_one_element_keep_both_targets() -> None:
    mapping = build_mapping(
        [
            rule("r2", "{cod_anu}-MATHS-B", cod_elp="MAT1"),
            rule("r1", "{cod_anu}-MATHS-A", cod_elp="MAT1"),
        ]
    )
    assert targets(element("MAT1"), mapping) == (
        ("2026-MATHS-A", "student"),
        ("2026-MATHS-B", "student"),
    )


@pytest.mark.parametrize(
    ("keep", "default_kept"),
    [((True, True), True), ((True, False), False), ((False, False), False)],
)
def test_the_default_stays_only_if_every_rule_for_the_element_keeps_it(
    keep: tuple[bool, bool], default_kept: bool
) -> None:
    mapping = build_mapping(
        [
            rule("r1", "{cod_anu}-A", cod_elp="MAT1", keep_default=keep[0]),
            rule("r2", "{cod_anu}-B", cod_elp="MAT1", keep_default=keep[1]),
        ]
    )
    found = targets(element("MAT1"), mapping)
    assert ("2026-A", "student") in found and ("2026-B", "student") in found
    assert (("2026-MAT1", "student") in found) is default_kept


def test_two_rules_for_one_stage_version_keep_both_targets() -> None:
    mapping = build_mapping(
        [
            rule("r1", "{cod_anu}-{cod_etp}-CM", cod_etp="L1INF", cod_vrs_vet=1),
            rule("r2", "{cod_anu}-{cod_etp}-TD", cod_etp="L1INF", cod_vrs_vet=1),
            rule("r3", "{cod_anu}-OTHER", cod_etp="L2INF", cod_vrs_vet=1),
        ]
    )
    assert targets(stage(), mapping) == (("2026-L1INF-CM", "student"), ("2026-L1INF-TD", "student"))
    assert targets(stage("L2INF"), mapping) == (("2026-OTHER", "student"),)
    assert targets(stage("L3INF"), mapping) == ()


def test_stage_facts_follow_the_stage_template() -> None:
    mapping = build_mapping((), stage_template="{cod_anu}-{cod_etp}-V{cod_vrs_vet}")
    assert targets(stage(vrs=2), mapping) == (("2026-L1INF-V2", "student"),)
    assert targets(element("INF101"), mapping) == (("2026-INF101", "student"),)


def test_a_stage_template_without_the_year_is_refused() -> None:
    with pytest.raises(ValueError, match="must contain"):
        build_mapping((), stage_template="{cod_etp}-{cod_vrs_vet}")


def test_the_default_role_and_no_element_default() -> None:
    mapping = build_mapping((), element_template=None, role="teacher")
    assert targets(element("INF101"), mapping) == ()
    with_stage = build_mapping((), stage_template="{cod_anu}-{cod_etp}", role="teacher")
    assert targets(stage(), with_stage) == (("2026-L1INF", "teacher"),)


def test_a_stage_version_zero_is_a_version_like_any_other() -> None:
    mapping = build_mapping(
        [
            rule("r0", "{cod_anu}-V0", cod_etp="L1INF", cod_vrs_vet=0),
            rule("r1", "{cod_anu}-V1", cod_etp="L1INF", cod_vrs_vet=1),
        ]
    )
    assert targets(stage(vrs=0), mapping) == (("2026-V0", "student"),)


def test_a_stage_rule_pinned_to_a_year() -> None:
    mapping = build_mapping([rule("r1", "L1-2025", cod_etp="L1INF", cod_vrs_vet=1, cod_anu="2025")])
    assert targets(stage(), mapping) == ()  # stage() is 2026


def test_a_placeholder_the_fact_lacks_renders_empty() -> None:
    # An element fact from a source without stage versions (e.g. a future Pégase adapter).
    fact = MembershipFact("21000001", FactKind.ELEMENT, "2026", cod_elp="INF101")
    mapping = build_mapping((), element_template="{cod_anu}-{cod_etp}{cod_vrs_vet}-{cod_elp}")
    assert targets(fact, mapping) == (("2026--INF101", "student"),)
    stage_rule = rule("r1", "{cod_anu}-{cod_etp}-{cod_elp}", cod_etp="L1INF", cod_vrs_vet=1)
    assert targets(stage(), build_mapping([stage_rule])) == (("2026-L1INF-", "student"),)
