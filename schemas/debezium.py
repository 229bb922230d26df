"""Debezium change envelopes for the APOGÉE tables the reconciler reads.

Values come without embedded schema: ``{before, after, source, op, ts_ms}``.
Column names are upper case from Oracle and lower case from the PostgreSQL
stand-in; both are accepted and normalised to lower case. The ``source`` block is
told apart by ``connector`` (or, failing that, by ``lsn`` versus ``scn``).

>>> env = parse_change("ind_contrat_elp", b'{"op": "c", "before": null, "after": {'
...     b'"COD_ANU": "2026", "COD_IND": 7, "COD_ETP": "L1INF", "COD_VRS_VET": 1,'
...     b' "COD_ELP": "INF101", "TEM_PRC_ICE": "N"},'
...     b' "source": {"connector": "postgresql", "lsn": 100, "txId": 5, "ts_ms": 1}}')
>>> env.after.cod_elp, env.source.lsn
('INF101', 100)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from schemas._types import SOURCE_ROW, Code, DebeziumDate, Number, NumberCode

__all__ = [
    "ChangeEnvelope",
    "IndContratElpChange",
    "IndContratElpRow",
    "IndividuChange",
    "IndividuRow",
    "InsAdmEtpChange",
    "InsAdmEtpRow",
    "OracleSource",
    "PostgresSource",
    "SourceBlock",
    "Table",
    "envelope_type",
    "parse_change",
]


class Table(StrEnum):
    """The APOGÉE tables the reconciler folds."""

    INDIVIDU = "INDIVIDU"
    INS_ADM_ETP = "INS_ADM_ETP"
    IND_CONTRAT_ELP = "IND_CONTRAT_ELP"


def _lower_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {k.lower() if isinstance(k, str) else k: v for k, v in data.items()}
    return data


class _Row(BaseModel):
    """A source row image; keys normalised to lower case, unknown columns ignored."""

    model_config = SOURCE_ROW
    table: ClassVar[Table]

    @model_validator(mode="before")
    @classmethod
    def _normalise_case(cls, data: Any) -> Any:
        return _lower_keys(data)


class IndividuRow(_Row):
    """``INDIVIDU``: one row per person; ``cod_etu`` may arrive later (an update)."""

    table: ClassVar[Table] = Table.INDIVIDU
    cod_ind: Number
    cod_etu: NumberCode | None = None
    lib_nom_pat_ind: Code | None = None
    lib_nom_usu_ind: Code | None = None
    lib_pr1_ind: Code | None = None
    cod_nne_ind: Code | None = None


class InsAdmEtpRow(_Row):
    """``INS_ADM_ETP``: administrative enrolment in a stage version (``eta_iae`` E/A)."""

    table: ClassVar[Table] = Table.INS_ADM_ETP
    cod_anu: Code
    cod_ind: Number
    cod_etp: Code
    cod_vrs_vet: Number
    num_occ_iae: Number
    cod_dip: Code | None = None
    cod_vrs_vdi: Number | None = None
    eta_iae: Code | None = None
    eta_pmt_iae: Code | None = None
    tem_iae_prm: Code | None = None
    dat_cre_iae: DebeziumDate | None = None
    dat_annul_iae: DebeziumDate | None = None


class IndContratElpRow(_Row):
    """``IND_CONTRAT_ELP``: one pedagogical-contract element (``tem_prc_ice`` N = to follow)."""

    table: ClassVar[Table] = Table.IND_CONTRAT_ELP
    cod_anu: Code
    cod_ind: Number
    cod_etp: Code
    cod_vrs_vet: Number
    cod_elp: Code
    cod_lse: Code | None = None
    tem_prc_ice: Code | None = None
    dat_mod_ice: DebeziumDate | None = None


SnapshotFlag = (
    bool
    | Literal[
        "true",
        "false",
        "first",
        "last",
        "first_in_data_collection",
        "last_in_data_collection",
        "incremental",
    ]
)


class PostgresSource(BaseModel):
    """Debezium PostgreSQL ``source`` block: position is (``lsn``, ``txId``)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)
    connector: Literal["postgresql"] = "postgresql"
    lsn: Number
    tx_id: Number | None = Field(default=None, alias="txId")
    ts_ms: Number | None = None
    snapshot: SnapshotFlag = False
    db: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    table: str | None = None


class OracleSource(BaseModel):
    """Debezium Oracle (LogMiner) ``source`` block: ``scn``, ``commit_scn``, ``txId``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True)
    connector: Literal["oracle"] = "oracle"
    scn: Number
    commit_scn: Number | None = None
    tx_id: str | None = Field(default=None, alias="txId")
    ssn: Number | None = None
    ts_ms: Number | None = None
    snapshot: SnapshotFlag = False
    schema_: str | None = Field(default=None, alias="schema")
    table: str | None = None


def _source_tag(data: Any) -> str:
    if isinstance(data, dict):
        connector = data.get("connector")
        if connector in ("postgresql", "oracle"):
            return str(connector)
        return "oracle" if "scn" in data else "postgresql"
    return "oracle" if isinstance(data, OracleSource) else "postgresql"


SourceBlock = Annotated[
    Annotated[PostgresSource, Tag("postgresql")] | Annotated[OracleSource, Tag("oracle")],
    Discriminator(_source_tag),
]


class ChangeEnvelope(BaseModel):
    """The common envelope; subclasses fix the row type."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    op: Literal["c", "u", "d", "r"]
    before: _Row | None = None
    after: _Row | None = None
    source: SourceBlock
    ts_ms: Number | None = None

    @model_validator(mode="after")
    def _images_match_op(self) -> ChangeEnvelope:
        if self.op in ("c", "u", "r") and self.after is None:
            raise ValueError(f"op={self.op!r} needs an 'after' row image")
        if self.op == "d" and self.before is None:
            raise ValueError(
                "op='d' needs a 'before' row image (REPLICA IDENTITY / supplemental logging)"
            )
        return self

    @property
    def is_snapshot(self) -> bool:
        return self.op == "r" or self.source.snapshot not in (False, "false")


class IndividuChange(ChangeEnvelope):
    before: IndividuRow | None = None
    after: IndividuRow | None = None


class InsAdmEtpChange(ChangeEnvelope):
    before: InsAdmEtpRow | None = None
    after: InsAdmEtpRow | None = None


class IndContratElpChange(ChangeEnvelope):
    before: IndContratElpRow | None = None
    after: IndContratElpRow | None = None


_ENVELOPES: dict[Table, type[ChangeEnvelope]] = {
    Table.INDIVIDU: IndividuChange,
    Table.INS_ADM_ETP: InsAdmEtpChange,
    Table.IND_CONTRAT_ELP: IndContratElpChange,
}


def envelope_type(table: str) -> type[ChangeEnvelope]:
    """The envelope model for a table name in any case; ``KeyError`` if not a table we read."""
    try:
        return _ENVELOPES[Table(table.upper())]
    except ValueError:
        raise KeyError(table) from None


def parse_change(table: str, value: bytes | str) -> ChangeEnvelope:
    """Parse one Debezium JSON value; raises ``ValueError``/``ValidationError``."""
    return envelope_type(table).model_validate_json(value)
