"""Row changes: the source-neutral input of the fold (one row of one table, or its deletion).

This is the seam where another source (Pégase) would plug in: produce these, and the
fold, mapping and plan stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.debezium import Table
from schemas.lineage import SourceRef

__all__ = [
    "AdminEnrolment",
    "ContractElement",
    "GroupKey",
    "Person",
    "RowChange",
    "RowValues",
    "Tombstone",
]

GroupKey = tuple[str, str, int]
"""(cod_anu, cod_etp, cod_vrs_vet): one stage-version enrolment of one student."""


@dataclass(frozen=True, slots=True)
class Person:
    """What the rules read from ``INDIVIDU``."""

    cod_etu: str | None


@dataclass(frozen=True, slots=True)
class AdminEnrolment:
    """What the rules read from ``INS_ADM_ETP``."""

    eta_iae: str | None
    eta_pmt_iae: str | None


@dataclass(frozen=True, slots=True)
class ContractElement:
    """What the rules read from ``IND_CONTRAT_ELP``."""

    tem_prc_ice: str | None


RowValues = Person | AdminEnrolment | ContractElement


@dataclass(frozen=True, slots=True)
class RowChange:
    """One source row as of one change; ``values`` is ``None`` when the row was deleted.

    ``group`` and ``item`` locate the row inside the student: ``INDIVIDU`` has neither,
    ``INS_ADM_ETP`` has its group and ``num_occ_iae``, ``IND_CONTRAT_ELP`` its group and
    ``cod_elp``.
    """

    table: Table
    cod_ind: int
    group: GroupKey | None
    item: int | str | None
    values: RowValues | None
    ref: SourceRef


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A Kafka record with a null value. It carries no source position, and the delete
    event before it (same key, same partition, so delivered first) already did the work:
    the fold leaves state untouched."""

    table: str
