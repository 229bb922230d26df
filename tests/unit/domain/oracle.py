"""The independent oracle: desired (course, user, role) computed plainly from final table contents.

Written as the rule reads in reference/apogee.md, with no code shared with the domain.
"""

from __future__ import annotations

from typing import Any

from schemas.debezium import Table

Tables = dict[Table, dict[tuple[Any, ...], dict[str, Any]]]


def desired_from_tables(
    tables: Tables, paid_states: frozenset[str] | None = None
) -> set[tuple[str, str, str]]:
    """{(course, user, role)} under the default mapping ``{cod_anu}-{cod_elp}``."""
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
            result.add((f"{row['cod_anu']}-{row['cod_elp']}", students[row["cod_ind"]], "student"))
    return result
