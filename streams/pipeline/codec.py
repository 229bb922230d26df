"""Bytes in table values and topic messages: compact, strict, and round-trip exact.

Table values are raw bytes to faust (``value_serializer="raw"``) so that the encoding is
ours, typed, and the same in RocksDB and in the changelog topics:

* student state — positional JSON arrays, derivable parts left out (a student holds ~25
  rows: field names, table names, row keys and topic names repeated 25 times would make each
  source change write three times as much to the changelog);
* desired enrolments, ledger entries, course records, course events — JSON through the
  contracts' own pydantic ``TypeAdapter`` (strict on the way in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import TypeAdapter
from pydantic_core import from_json, to_json

from schemas.course_events import COURSE_EVENT, CourseEvent, CourseMeta, WriteInDoubt
from schemas.debezium import Table
from schemas.enrolment import DesiredEnrolment, LedgerEntry
from schemas.lineage import SourceRef
from streams.domain.changes import AdminEnrolment, ContractElement, GroupKey, Person, RowValues
from streams.domain.student import Group, Slot, StudentState

__all__ = [
    "decode_desired",
    "decode_doubt",
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
_DOUBT = TypeAdapter(WriteInDoubt)


def encode(value: DesiredEnrolment | LedgerEntry | CourseMeta | WriteInDoubt) -> bytes:
    """A contract dataclass as JSON bytes."""
    return to_json(value)


def decode_desired(raw: bytes) -> DesiredEnrolment:
    return _DESIRED.validate_json(raw)


def decode_ledger(raw: bytes) -> LedgerEntry:
    return _LEDGER.validate_json(raw)


def decode_meta(raw: bytes) -> CourseMeta:
    return _META.validate_json(raw)


def decode_doubt(raw: bytes) -> WriteInDoubt:
    return _DOUBT.validate_json(raw)


def encode_event(event: CourseEvent) -> bytes:
    return COURSE_EVENT.dump_json(event)


def decode_event(raw: bytes) -> CourseEvent:
    return COURSE_EVENT.validate_json(raw)


# -- student state ---------------------------------------------------------------------------
#
# ``[cod_ind, [topics…], person_slot|null, [[cod_anu, cod_etp, cod_vrs_vet, iae, ice]…]]``.
# A slot is ``[log, tx, commit_log, seq, snapshot, committed_ms, topic#, partition, offset,
# values]``: its table follows from where it sits, its key from the student and the group
# (the key is appended only in the unlikely case it differs), and topic names are listed once.
# That halves what each source change writes to the students changelog.


class _Topics:
    def __init__(self, names: list[str | None] | None = None) -> None:
        self.names: list[str | None] = names or []

    def index(self, topic: str | None) -> int:
        try:
            return self.names.index(topic)
        except ValueError:
            self.names.append(topic)
            return len(self.names) - 1


def _slot(slot: Slot, table: Table, key: str, topics: _Topics) -> list[Any]:
    ref = slot.ref
    if Table(ref.table) is not table:
        raise ValueError(f"slot of {table} holds a {ref.table} position")
    out = [
        ref.log,
        ref.tx,
        ref.commit_log,
        ref.seq,
        int(ref.snapshot),
        ref.committed_ms,
        topics.index(ref.topic),
        ref.partition,
        ref.offset,
        _values(slot.values),
    ]
    if ref.key != key:
        out.append(ref.key)
    return out


def _unslot(
    raw: list[Any], table: Table, key: str, topics: list[str | None], kind: type[RowValues]
) -> Slot:
    log, tx, commit_log, seq, snapshot, committed_ms, topic, partition, offset, values = raw[:10]
    ref = SourceRef(
        table.value,
        raw[10] if len(raw) > 10 else key,
        log,
        tx,
        commit_log,
        seq,
        bool(snapshot),
        committed_ms,
        topics[topic],
        partition,
        offset,
    )
    return Slot(ref, None if values is None else kind(*values))


def _values(values: RowValues | None) -> list[Any] | None:
    if values is None:
        return None
    if isinstance(values, Person):
        return [values.cod_etu]
    if isinstance(values, AdminEnrolment):
        return [values.eta_iae, values.eta_pmt_iae]
    return [values.tem_prc_ice]


def _row_key(cod_ind: int, group: GroupKey, item: int | str) -> str:
    """As :mod:`streams.domain.ingest` joins a primary key: the row's columns in key order."""
    return f"{group[0]}|{cod_ind}|{group[1]}|{group[2]}|{item}"


def encode_student(state: StudentState) -> bytes:
    topics = _Topics()
    cod_ind = state.cod_ind
    person = (
        None if state.person is None else _slot(state.person, Table.INDIVIDU, str(cod_ind), topics)
    )
    groups = []
    for key, group in sorted(state.groups.items()):
        iae = [
            [occ, _slot(slot, Table.INS_ADM_ETP, _row_key(cod_ind, key, occ), topics)]
            for occ, slot in sorted(group.iae.items())
        ]
        ice = [
            [elp, _slot(slot, Table.IND_CONTRAT_ELP, _row_key(cod_ind, key, elp), topics)]
            for elp, slot in sorted(group.ice.items())
        ]
        groups.append([key[0], key[1], key[2], iae, ice])
    return to_json([cod_ind, topics.names, person, groups])


def decode_student(raw: bytes) -> StudentState:
    cod_ind, topics, person, groups = from_json(raw)
    if not isinstance(cod_ind, int):
        raise ValueError(f"student state: cod_ind {cod_ind!r} is not an int")
    slot = None if person is None else _unslot(person, Table.INDIVIDU, str(cod_ind), topics, Person)
    decoded: dict[GroupKey, Group] = {}
    for cod_anu, cod_etp, cod_vrs_vet, iae, ice in groups:
        key = (cod_anu, cod_etp, cod_vrs_vet)
        slots_iae: Mapping[int, Slot] = {
            occ: _unslot(s, Table.INS_ADM_ETP, _row_key(cod_ind, key, occ), topics, AdminEnrolment)
            for occ, s in iae
        }
        slots_ice: Mapping[str, Slot] = {
            elp: _unslot(
                s, Table.IND_CONTRAT_ELP, _row_key(cod_ind, key, elp), topics, ContractElement
            )
            for elp, s in ice
        }
        decoded[key] = Group(slots_iae, slots_ice)
    return StudentState(cod_ind, slot, decoded)
