"""Bytes in table values and topic messages: compact, strict, and round-trip exact.

Table values are raw bytes to faust (``value_serializer="raw"``) so that the encoding is
ours, typed, and the same in RocksDB and in the changelog topics:

* student state — positional JSON arrays (a student holds ~25 rows; field names repeated
  25 times would triple the changelog bytes per source change);
* desired enrolments, ledger entries, course records, course events — JSON through the
  contracts' own pydantic ``TypeAdapter`` (strict on the way in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pydantic_core import from_json, to_json

from schemas.course_events import COURSE_EVENT, CourseEvent, CourseMeta
from schemas.debezium import Table
from schemas.enrolment import DesiredEnrolment, LedgerEntry
from schemas.lineage import SourceRef
from streams.domain.changes import AdminEnrolment, ContractElement, GroupKey, Person, RowValues
from streams.domain.student import Group, Slot, StudentState

__all__ = [
    "decode_desired",
    "decode_event",
    "decode_ledger",
    "decode_meta",
    "decode_student",
    "encode",
    "encode_event",
    "encode_student",
]

T = TypeVar("T")

_DESIRED = TypeAdapter(DesiredEnrolment)
_LEDGER = TypeAdapter(LedgerEntry)
_META = TypeAdapter(CourseMeta)
_TABLES = (Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP)
_TABLE_CODE = {table: code for code, table in enumerate(_TABLES)}


def encode(value: DesiredEnrolment | LedgerEntry | CourseMeta) -> bytes:
    """A contract dataclass as JSON bytes."""
    return to_json(value)


def decode_desired(raw: bytes) -> DesiredEnrolment:
    return _DESIRED.validate_json(raw)


def decode_ledger(raw: bytes) -> LedgerEntry:
    return _LEDGER.validate_json(raw)


def decode_meta(raw: bytes) -> CourseMeta:
    return _META.validate_json(raw)


def encode_event(event: CourseEvent) -> bytes:
    return COURSE_EVENT.dump_json(event)


def decode_event(raw: bytes) -> CourseEvent:
    return COURSE_EVENT.validate_json(raw)


# -- student state ---------------------------------------------------------------------------


def _ref(ref: SourceRef) -> list[Any]:
    return [
        _TABLE_CODE[Table(ref.table)],
        ref.key,
        ref.log,
        ref.tx,
        ref.commit_log,
        ref.seq,
        int(ref.snapshot),
        ref.committed_ms,
        ref.topic,
        ref.partition,
        ref.offset,
    ]


def _unref(raw: list[Any]) -> SourceRef:
    table, key, log, tx, commit_log, seq, snapshot, committed_ms, topic, partition, offset = raw
    return SourceRef(
        _TABLES[table].value,
        key,
        log,
        tx,
        commit_log,
        seq,
        bool(snapshot),
        committed_ms,
        topic,
        partition,
        offset,
    )


def _values(values: RowValues | None) -> list[Any] | None:
    if values is None:
        return None
    if isinstance(values, Person):
        return [values.cod_etu]
    if isinstance(values, AdminEnrolment):
        return [values.eta_iae, values.eta_pmt_iae]
    return [values.tem_prc_ice]


def _slot(slot: Slot) -> list[Any]:
    return [_ref(slot.ref), _values(slot.values)]


def _unslot(raw: list[Any], kind: type[RowValues]) -> Slot:
    ref, values = raw
    return Slot(_unref(ref), None if values is None else kind(*values))


def _group(key: GroupKey, group: Group) -> list[Any]:
    iae = [[occ, _slot(s)] for occ, s in sorted(group.iae.items())]
    ice = [[elp, _slot(s)] for elp, s in sorted(group.ice.items())]
    return [key[0], key[1], key[2], iae, ice]


def _ungroup(raw: list[Any]) -> tuple[GroupKey, Group]:
    cod_anu, cod_etp, cod_vrs_vet, iae, ice = raw
    slots_iae: Mapping[int, Slot] = {occ: _unslot(s, AdminEnrolment) for occ, s in iae}
    slots_ice: Mapping[str, Slot] = {elp: _unslot(s, ContractElement) for elp, s in ice}
    return (cod_anu, cod_etp, cod_vrs_vet), Group(slots_iae, slots_ice)


def encode_student(state: StudentState) -> bytes:
    """``[cod_ind, person_slot|null, [groups…]]``, groups and slots in key order."""
    person = None if state.person is None else _slot(state.person)
    groups = [_group(key, group) for key, group in sorted(state.groups.items())]
    return to_json([state.cod_ind, person, groups])


def decode_student(raw: bytes) -> StudentState:
    cod_ind, person, groups = from_json(raw)
    if not isinstance(cod_ind, int):
        raise ValueError(f"student state: cod_ind {cod_ind!r} is not an int")
    slot = None if person is None else _unslot(person, Person)
    return StudentState(cod_ind, slot, dict(_ungroup(g) for g in groups))
