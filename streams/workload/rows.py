"""Row changes as data: inserts, updates and deletes grouped in transactions, and tables in memory.

A workload is a list of :data:`Transaction`. The same transactions are written to PostgreSQL
(:mod:`streams.workload.database`) and applied to :class:`Tables` in memory, so what a test or
the demo expects can be computed from the rows without a database.

>>> t = Tables()
>>> t.apply((Insert("individu", {"cod_ind": 1, "cod_etu": None}),))
>>> t.apply((Update("individu", {"cod_ind": 1}, {"cod_etu": 42}),))
>>> t.rows["individu"][(1,)]["cod_etu"]
42
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COLUMNS",
    "PK",
    "STUDENT_TABLES",
    "Delete",
    "Insert",
    "Op",
    "Row",
    "Tables",
    "Transaction",
    "Update",
    "key_of",
    "row_changes",
]

Row = dict[str, Any]

# Column order as in connectors/apogee-schema.sql (COPY writes them in this order).
COLUMNS: dict[str, tuple[str, ...]] = {
    "individu": (
        "cod_ind",
        "cod_etu",
        "lib_nom_pat_ind",
        "lib_nom_usu_ind",
        "lib_pr1_ind",
        "cod_nne_ind",
    ),
    "ins_adm_etp": (
        "cod_anu",
        "cod_ind",
        "cod_etp",
        "cod_vrs_vet",
        "num_occ_iae",
        "cod_dip",
        "cod_vrs_vdi",
        "eta_iae",
        "eta_pmt_iae",
        "tem_iae_prm",
        "dat_cre_iae",
        "dat_annul_iae",
    ),
    "ind_contrat_elp": (
        "cod_anu",
        "cod_ind",
        "cod_etp",
        "cod_vrs_vet",
        "cod_elp",
        "cod_lse",
        "tem_prc_ice",
        "dat_mod_ice",
    ),
    "element_pedagogi": (
        "cod_elp",
        "lib_elp",
        "lic_elp",
        "cod_nel",
        "cod_cmp",
        "eta_elp",
        "tem_sus_elp",
    ),
    "version_etape": ("cod_etp", "cod_vrs_vet", "lib_web_vet"),
}
PK: dict[str, tuple[str, ...]] = {
    "individu": ("cod_ind",),
    "ins_adm_etp": ("cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "num_occ_iae"),
    "ind_contrat_elp": ("cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "cod_elp"),
    "element_pedagogi": ("cod_elp",),
    "version_etape": ("cod_etp", "cod_vrs_vet"),
}
STUDENT_TABLES = ("individu", "ins_adm_etp", "ind_contrat_elp")


def key_of(table: str, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in PK[table])


@dataclass(frozen=True, slots=True)
class Insert:
    table: str
    row: Row


@dataclass(frozen=True, slots=True)
class Update:
    table: str
    key: Row  # the primary-key columns
    changes: Row


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    key: Row


Op = Insert | Update | Delete
Transaction = tuple[Op, ...]


@dataclass
class Tables:
    """Table name → primary key → row: what the database holds after the transactions."""

    rows: dict[str, dict[tuple[Any, ...], Row]] = field(
        default_factory=lambda: {name: {} for name in COLUMNS}
    )

    def apply(self, transaction: Transaction) -> None:
        for op in transaction:
            table = self.rows[op.table]
            if isinstance(op, Insert):
                key = key_of(op.table, op.row)
                if key in table:
                    raise ValueError(f"duplicate key {key} in {op.table}")
                table[key] = dict(op.row)
            elif isinstance(op, Update):
                table[key_of(op.table, op.key)].update(op.changes)
            else:
                del table[key_of(op.table, op.key)]

    def apply_all(self, transactions: Iterable[Transaction]) -> Tables:
        for transaction in transactions:
            self.apply(transaction)
        return self

    def values(self, table: str) -> list[Row]:
        return list(self.rows[table].values())


def row_changes(transactions: Iterable[Transaction], tables: Iterable[str]) -> int:
    """How many change events Debezium sends for these transactions on these tables."""
    wanted = set(tables)
    return sum(1 for tx in transactions for op in tx if op.table in wanted)
