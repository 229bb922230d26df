"""Bad input becomes data (a rejection with a dead-letter reason), never an exception."""

from __future__ import annotations

import pytest

from schemas.deadletter import DeadLetterReason
from schemas.debezium import ChangeEnvelope, IndividuRow, PostgresSource, Table, _Row
from schemas.lineage import SourceRef
from streams.domain.changes import AdminEnrolment, ContractElement, RowChange, Tombstone
from streams.domain.ingest import KafkaRef, Rejected, changes_of, decode

TOPIC = "apogee.apogee.individu"


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        (TOPIC, b"{not json", DeadLetterReason.MALFORMED_JSON),
        (TOPIC, b'{"op": "t", "source": {"lsn": 1}}', DeadLetterReason.UNSUPPORTED_OPERATION),
        (TOPIC, b'{"op": "d", "source": {"lsn": 1}}', DeadLetterReason.INVALID_ENVELOPE),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_etu": 1}, "source": {"lsn": 1}}',
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        ("apogee.apogee.groupe", b"{}", DeadLetterReason.UNKNOWN_TABLE),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_ind": 7}, "source": {"lsn": 1, "table": "grp"}}',
            DeadLetterReason.UNKNOWN_TABLE,
        ),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_grp": "G1"}, "source": {"lsn": 1, "table": "grp"}}',
            DeadLetterReason.UNKNOWN_TABLE,
        ),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_ind": 7}, "source": {"lsn": 1, "table": "ins_adm_etp"}}',
            DeadLetterReason.UNKNOWN_TABLE,
        ),
        # huge values: beyond what an Oracle NUMBER (38 digits) or VARCHAR2 (4,000) holds
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_ind": "1e99999999"}, "source": {"lsn": 1}}',
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_ind": "NaN"}, "source": {"lsn": 1}}',
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_ind": ' + b"9" * 39 + b'}, "source": {"lsn": 1}}',
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (
            TOPIC,
            b'{"op": "c", "after": {"cod_ind": 7, "lib_nom_pat_ind": "'
            + b"X" * 4001
            + b'"}, "source": {"lsn": 1}}',
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (
            "apogee.apogee.ins_adm_etp",
            b'{"op": "c", "after": {"cod_anu": "2026", "cod_ind": 7, "cod_etp": "E",'
            b' "cod_vrs_vet": 1, "num_occ_iae": 1, "dat_cre_iae": 1' + b"0" * 30 + b"},"
            b' "source": {"lsn": 1}}',
            DeadLetterReason.INVALID_ENVELOPE,
        ),
    ],
    ids=[
        "not-json",
        "truncate",
        "delete-without-before",
        "missing-key",
        "unknown-table",
        "unknown-table-in-source",
        "unknown-table-other-columns",
        "another-table-on-this-topic",
        "exponent-of-a-hundred-million",
        "not-a-number",
        "39-digits",
        "4001-characters",
        "date-overflow",
    ],
)
def test_rejections(topic: str, value: bytes, reason: DeadLetterReason) -> None:
    result = decode(topic, value)
    assert isinstance(result, Rejected) and result.reason is reason


def test_the_largest_values_a_source_column_holds_are_read() -> None:
    value = (
        b'{"op": "c", "after": {"cod_ind": "'
        + b"9" * 38
        + b'", "lib_nom_pat_ind": "'
        + b"X" * 4000
        + b'"}, "source": {"lsn": 1, "table": "individu"}}'
    )
    (change,) = decode(TOPIC, value)  # type: ignore[misc]
    assert change.cod_ind == 10**38 - 1


def test_a_null_value_is_a_tombstone() -> None:
    assert decode(TOPIC, None) == Tombstone("INDIVIDU")


def test_kafka_coordinates_are_kept_for_lineage() -> None:
    value = b'{"op": "c", "after": {"cod_ind": 7}, "source": {"lsn": 1, "txId": 2, "ts_ms": 3}}'
    (change,) = decode(TOPIC, value, KafkaRef(TOPIC, 2, 41))  # type: ignore[misc]
    ref = change.ref
    assert (ref.topic, ref.partition, ref.offset, ref.log, ref.tx, ref.committed_ms) == (
        TOPIC,
        2,
        41,
        1,
        "2",
        3,
    )


ICE_TOPIC = "apogee.apogee.ind_contrat_elp"
ICE_ROW = (
    '{"cod_anu": "2026", "cod_ind": 7, "cod_etp": "L1INF", "cod_vrs_vet": 1,'
    ' "cod_elp": "INF101", "tem_prc_ice": "N"}'
)
ICE_KEY = "2026|7|L1INF|1|INF101"


def ice_record(op: str, source: str, before: str = "null", after: str = ICE_ROW) -> bytes:
    return f'{{"op": "{op}", "before": {before}, "after": {after}, "source": {source}}}'.encode()


def only_change(topic: str, value: bytes, kafka: KafkaRef | None = None) -> RowChange:
    decoded = decode(topic, value, kafka)
    assert isinstance(decoded, tuple) and len(decoded) == 1, decoded
    return decoded[0]


def test_every_lineage_field_of_a_postgresql_change() -> None:
    source = '{"connector": "postgresql", "lsn": 100, "txId": 5, "ts_ms": 1760000000123}'
    change = only_change(ICE_TOPIC, ice_record("c", source), KafkaRef(ICE_TOPIC, 3, 41))
    assert change.ref == SourceRef(
        table="IND_CONTRAT_ELP",
        key=ICE_KEY,
        log=100,
        tx="5",
        commit_log=None,
        seq=0,
        snapshot=False,
        committed_ms=1760000000123,
        topic=ICE_TOPIC,
        partition=3,
        offset=41,
    )
    assert (change.table, change.cod_ind, change.group, change.item) == (
        Table.IND_CONTRAT_ELP,
        7,
        ("2026", "L1INF", 1),
        "INF101",
    )
    assert change.values == ContractElement("N")


def test_every_lineage_field_of_an_oracle_change() -> None:
    source = (
        '{"connector": "oracle", "scn": "9000", "commit_scn": "9001",'
        ' "txId": "0a001b00c4010000", "ssn": 7, "ts_ms": "1760000000456"}'
    )
    change = only_change(ICE_TOPIC, ice_record("u", source), KafkaRef(ICE_TOPIC, 2, 5))
    assert change.ref == SourceRef(
        table="IND_CONTRAT_ELP",
        key=ICE_KEY,
        log=9000,
        tx="0a001b00c4010000",
        commit_log=9001,
        seq=7,
        snapshot=False,
        committed_ms=1760000000456,
        topic=ICE_TOPIC,
        partition=2,
        offset=5,
    )


def test_without_kafka_coordinates_and_without_ssn() -> None:
    source = '{"connector": "oracle", "scn": "9000", "commit_scn": "9001", "txId": "0a"}'
    ref = only_change(ICE_TOPIC, ice_record("c", source)).ref
    assert (ref.seq, ref.topic, ref.partition, ref.offset, ref.committed_ms) == (0, *(None,) * 4)


@pytest.mark.parametrize(
    "source",
    [
        '{"connector": "postgresql", "lsn": 100, "txId": 5, "snapshot": "true"}',
        '{"connector": "oracle", "scn": "9000", "snapshot": "last"}',
    ],
    ids=["postgresql", "oracle"],
)
def test_a_snapshot_read_is_marked_as_such(source: str) -> None:
    ref = only_change(ICE_TOPIC, ice_record("r", source)).ref
    assert ref.snapshot is True and ref.commit_log is None


IAE_ROW = (
    '{"cod_anu": "2026", "cod_ind": 7, "cod_etp": "L1INF", "cod_vrs_vet": 2,'
    ' "num_occ_iae": 1, "eta_iae": "E", "eta_pmt_iae": "P"}'
)


def test_an_administrative_enrolment_row_and_its_key() -> None:
    source = '{"connector": "postgresql", "lsn": 100, "txId": 5}'
    change = only_change("apogee.apogee.ins_adm_etp", ice_record("c", source, after=IAE_ROW))
    assert (change.table, change.group, change.item, change.ref.key) == (
        Table.INS_ADM_ETP,
        ("2026", "L1INF", 2),
        1,
        "2026|7|L1INF|2|1",
    )
    assert change.values == AdminEnrolment("E", "P")


def test_a_delete_keeps_its_kafka_coordinates() -> None:
    source = '{"connector": "postgresql", "lsn": 100, "txId": 5}'
    value = ice_record("d", source, before=ICE_ROW, after="null")
    change = only_change(ICE_TOPIC, value, KafkaRef(ICE_TOPIC, 1, 77))
    assert change.values is None and change.ref.key == ICE_KEY
    assert (change.ref.topic, change.ref.partition, change.ref.offset) == (ICE_TOPIC, 1, 77)


def test_both_halves_of_a_primary_key_change_keep_the_kafka_coordinates() -> None:
    source = '{"connector": "postgresql", "lsn": 100, "txId": 5}'
    moved = ICE_ROW.replace("INF101", "INF102")
    decoded = decode(ICE_TOPIC, ice_record("u", source, ICE_ROW, moved), KafkaRef(ICE_TOPIC, 1, 78))
    assert isinstance(decoded, tuple)
    assert [(c.ref.key, c.values is None, c.ref.offset) for c in decoded] == [
        (ICE_KEY, True, 78),
        ("2026|7|L1INF|1|INF102", False, 78),
    ]


def test_a_tombstone_carries_no_position_even_with_kafka_coordinates() -> None:
    # The delete before it (same key, same partition) carried the lineage already.
    assert decode(ICE_TOPIC, None, KafkaRef(ICE_TOPIC, 1, 79)) == Tombstone("IND_CONTRAT_ELP")


def test_a_topic_named_after_the_bare_table_is_read_too() -> None:
    source = '{"connector": "postgresql", "lsn": 100}'
    assert only_change("ind_contrat_elp", ice_record("c", source)).table is Table.IND_CONTRAT_ELP


def test_rejections_say_why() -> None:
    unknown = decode("apogee.apogee.groupe", b"{}")
    missing = decode(TOPIC, b'{"op": "c", "after": {"cod_etu": 1}, "source": {"lsn": 1}}')
    truncate = decode(TOPIC, b'{"op": "t", "source": {"lsn": 1}}')
    garbage = decode(TOPIC, b"{not json")
    assert isinstance(unknown, Rejected) and "'GROUPE'" in unknown.detail
    assert isinstance(missing, Rejected) and "cod_ind" in missing.detail
    assert isinstance(truncate, Rejected) and "op" in truncate.detail
    assert isinstance(garbage, Rejected) and "json" in garbage.detail.lower()


def test_a_row_of_no_table_the_fold_reads_is_a_type_error_naming_it() -> None:
    source = PostgresSource(lsn=1)
    after = IndividuRow(cod_ind=7)
    with pytest.raises(TypeError, match="not a source row: _Row"):
        changes_of(ChangeEnvelope(op="c", after=_Row(), source=source))
    with pytest.raises(TypeError, match="not a source row: _Row"):
        changes_of(ChangeEnvelope(op="u", before=_Row(), after=after, source=source))
