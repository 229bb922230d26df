"""The independent oracle: desired (course, user, role) computed plainly from final table contents.

Written as the rule reads in reference/apogee.md, with no code shared with the domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.debezium import Table

Tables = dict[Table, dict[tuple[Any, ...], dict[str, Any]]]


def desired_from_tables(
    tables: Tables,
    paid_states: frozenset[str] | None = None,
    element_courses: Mapping[str, tuple[str, ...]] | None = None,
    stage_course: str | None = None,
) -> set[tuple[str, str, str]]:
    """{(course, user, role)}, every role ``student``.

    A followed element goes to ``{anu}-{elp}``, or to the templates ``element_courses``
    lists for it; a stage version in force goes to ``stage_course`` (``{anu}``, ``{etp}``,
    ``{vrs}``) if given.
    """
    students = {
        row["cod_ind"]: str(row["cod_etu"])
        for row in tables[Table.INDIVIDU].values()
        if row.get("cod_etu") is not None
    }
    in_force = {
        (row["cod_anu"], row["cod_ind"], row["cod_etp"], row["cod_vrs_vet"])
        for row in tables[Table.INS_ADM_ETP].values()
        if row["eta_iae"] == "E" and (paid_states is None or row["eta_pmt_iae"] in paid_states)
    }
    result = set()
    for row in tables[Table.IND_CONTRAT_ELP].values():
        group = (row["cod_anu"], row["cod_ind"], row["cod_etp"], row["cod_vrs_vet"])
        if row["tem_prc_ice"] == "N" and group in in_force and row["cod_ind"] in students:
            for course in (element_courses or {}).get(row["cod_elp"], ("{anu}-{elp}",)):
                name = course.format(anu=row["cod_anu"], elp=row["cod_elp"])
                result.add((name, students[row["cod_ind"]], "student"))
    if stage_course is not None:
        for anu, ind, etp, vrs in in_force:
            if ind in students:
                name = stage_course.format(anu=anu, etp=etp, vrs=vrs)
                result.add((name, students[ind], "student"))
    return result
