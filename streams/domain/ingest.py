"""Debezium records → row changes, or a rejection with a dead-letter reason (never an exception).

>>> out = decode("apogee.apogee.individu", b'{"op": "u", "after": {"cod_ind": 7, "cod_etu": "123"},'
...     b' "source": {"connector": "postgresql", "lsn": 9, "txId": 3, "table": "individu"}}')
>>> out[0].values, out[0].ref.key, out[0].ref.log
(Person(cod_etu='123'), '7', 9)
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import from_json

from schemas.deadletter import DeadLetterReason
from schemas.debezium import (
    ChangeEnvelope,
    IndContratElpRow,
    IndividuRow,
    InsAdmEtpRow,
    OracleSource,
    PostgresSource,
    Table,
    envelope_type,
)
from schemas.lineage import SourceRef
from streams.domain.changes import (
    AdminEnrolment,
    ContractElement,
    Person,
    RowChange,
    RowValues,
    Tombstone,
)

__all__ = ["Decoded", "KafkaRef", "Rejected", "changes_of", "decode", "table_of_topic"]


@dataclass(frozen=True, slots=True)
class KafkaRef:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: DeadLetterReason
    detail: str


Decoded = tuple[RowChange, ...] | Tombstone | Rejected
_SourceRow = IndividuRow | InsAdmEtpRow | IndContratElpRow


def table_of_topic(topic: str) -> str:
    """``apogee.apogee.ins_adm_etp`` → ``INS_ADM_ETP`` (Debezium's ``prefix.schema.table``)."""
    return topic.rsplit(".", 1)[-1].upper()


def decode(topic: str, value: bytes | None, kafka: KafkaRef | None = None) -> Decoded:
    """Parse one record of a CDC topic; the table is taken from the topic name."""
    table = table_of_topic(topic)
    try:
        model = envelope_type(table)
    except KeyError:
        return Rejected(DeadLetterReason.UNKNOWN_TABLE, f"table {table!r} is not read")
    if value is None:
        return Tombstone(table)
    try:
        envelope = model.model_validate_json(value)
    except ValidationError as exc:
        return _other_table(value, table) or _rejection(exc)
    except (ValueError, ArithmeticError) as exc:  # a validator that let its own error escape
        return _other_table(value, table) or Rejected(DeadLetterReason.INVALID_ENVELOPE, repr(exc))
    named = envelope.source.table
    if named is not None and named.upper() != table:
        return _unknown(named, table)
    return changes_of(envelope, kafka)


def _other_table(value: bytes, table: str) -> Rejected | None:
    """A record that does not validate may still say which table it is from: a table we do
    not read (a connector routing more tables to our topics) is that, not a bad envelope."""
    try:
        named = from_json(value)["source"]["table"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(named, str) or named.upper() == table:
        return None
    return _unknown(named, table)


def _unknown(named: str, table: str) -> Rejected:
    detail = f"table {named[:100]!r} is not read (on the {table} topic)"
    return Rejected(DeadLetterReason.UNKNOWN_TABLE, detail)


def _rejection(exc: ValidationError) -> Rejected:
    errors = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return Rejected(DeadLetterReason.MALFORMED_JSON, str(exc))
    if any(e["loc"][:1] == ("op",) for e in errors):
        return Rejected(DeadLetterReason.UNSUPPORTED_OPERATION, str(exc))
    return Rejected(DeadLetterReason.INVALID_ENVELOPE, str(exc))


def changes_of(envelope: ChangeEnvelope, kafka: KafkaRef | None = None) -> tuple[RowChange, ...]:
    """One envelope → its row changes; an update that changes the key is a delete plus a create."""
    before, after = envelope.before, envelope.after
    if envelope.op == "d":
        assert before is not None  # checked by the envelope validator
        return (_change(before, None, envelope, kafka),)
    assert after is not None
    upsert = _change(after, _values(after), envelope, kafka)
    if before is not None and _pk(before) != _pk(after):
        return (_change(before, None, envelope, kafka), upsert)
    return (upsert,)


def _pk(row: object) -> tuple[object, ...]:
    if isinstance(row, IndividuRow):
        return (row.cod_ind,)
    if isinstance(row, InsAdmEtpRow):
        return (row.cod_anu, row.cod_ind, row.cod_etp, row.cod_vrs_vet, row.num_occ_iae)
    if isinstance(row, IndContratElpRow):
        return (row.cod_anu, row.cod_ind, row.cod_etp, row.cod_vrs_vet, row.cod_elp)
    raise TypeError(f"not a source row: {type(row).__name__}")


def _values(row: object) -> RowValues:
    if isinstance(row, IndividuRow):
        return Person(row.cod_etu)
    if isinstance(row, InsAdmEtpRow):
        return AdminEnrolment(row.eta_iae, row.eta_pmt_iae)
    if isinstance(row, IndContratElpRow):
        return ContractElement(row.tem_prc_ice)
    raise TypeError(f"not a source row: {type(row).__name__}")


def _change(
    row: object, values: RowValues | None, envelope: ChangeEnvelope, kafka: KafkaRef | None
) -> RowChange:
    assert isinstance(row, IndividuRow | InsAdmEtpRow | IndContratElpRow)
    ref = _ref(row.table, _pk(row), envelope, kafka)
    if isinstance(row, IndividuRow):
        return RowChange(Table.INDIVIDU, row.cod_ind, None, None, values, ref)
    group = (row.cod_anu, row.cod_etp, row.cod_vrs_vet)
    item = row.num_occ_iae if isinstance(row, InsAdmEtpRow) else row.cod_elp
    return RowChange(row.table, row.cod_ind, group, item, values, ref)


def _ref(
    table: Table, pk: tuple[object, ...], envelope: ChangeEnvelope, kafka: KafkaRef | None
) -> SourceRef:
    source = envelope.source
    key = "|".join(str(part) for part in pk)
    topic, partition, offset = (
        (kafka.topic, kafka.partition, kafka.offset) if kafka else (None,) * 3
    )
    if isinstance(source, PostgresSource):
        tx = None if source.tx_id is None else str(source.tx_id)
        return SourceRef(
            table.value,
            key,
            source.lsn,
            tx,
            None,
            0,
            envelope.is_snapshot,
            source.ts_ms,
            topic,
            partition,
            offset,
        )
    assert isinstance(source, OracleSource)
    return SourceRef(
        table.value,
        key,
        source.scn,
        source.tx_id,
        source.commit_scn,
        source.ssn or 0,
        envelope.is_snapshot,
        source.ts_ms,
        topic,
        partition,
        offset,
    )
