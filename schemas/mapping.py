"""Course-mapping rules: which Moodle course(s) and role a fact leads to.

The default is a template over the year and the element (``{cod_anu}-{cod_elp}``);
explicit rules, held on a compacted topic keyed by ``rule_id``, override it for one
element or one stage version. The year is always part of the resulting course key:
a target template must contain ``{cod_anu}`` unless the rule is pinned to a year.
"""

from __future__ import annotations

from string import Formatter
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from schemas._types import MESSAGE

__all__ = ["PLACEHOLDERS", "CourseMappingRule", "CourseTarget", "check_template"]

PLACEHOLDERS = frozenset({"cod_anu", "cod_elp", "cod_etp", "cod_vrs_vet"})
_Id = Annotated[str, Field(min_length=1, max_length=100)]


def check_template(template: str) -> frozenset[str]:
    """The placeholders of a course template; ``ValueError`` on an unknown one."""
    names = frozenset(name for _, name, _, _ in Formatter().parse(template) if name is not None)
    unknown = names - PLACEHOLDERS
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in {template!r}")
    return names


class CourseTarget(BaseModel):
    """A Moodle course ``idnumber`` template and the role to hold there."""

    model_config = MESSAGE
    course: _Id
    role: _Id = "student"


class CourseMappingRule(BaseModel):
    """An override for one element (``cod_elp``) or stage version (``cod_etp``, ``cod_vrs_vet``).

    ``targets`` may be empty together with ``keep_default=False``: the element then
    maps to no course at all. ``keep_default=True`` adds the targets to the default.
    """

    model_config = MESSAGE
    rule_id: _Id
    cod_anu: str | None = None
    cod_elp: str | None = None
    cod_etp: str | None = None
    cod_vrs_vet: int | None = None
    targets: tuple[CourseTarget, ...] = ()
    keep_default: bool = False

    @model_validator(mode="after")
    def _one_subject(self) -> CourseMappingRule:
        by_element = self.cod_elp is not None
        by_stage = self.cod_etp is not None and self.cod_vrs_vet is not None
        if by_element == by_stage:
            raise ValueError("a rule names either cod_elp, or both cod_etp and cod_vrs_vet")
        return self

    @model_validator(mode="after")
    def _year_in_key(self) -> CourseMappingRule:
        for target in self.targets:
            names = check_template(target.course)
            if self.cod_anu is None and "cod_anu" not in names:
                raise ValueError(
                    f"target {target.course!r} lacks {{cod_anu}} and the rule is not pinned "
                    "to a year: a new year would reuse last year's course"
                )
        return self
