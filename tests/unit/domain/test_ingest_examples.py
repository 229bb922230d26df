"""Bad input becomes data (a rejection with a dead-letter reason), never an exception."""

from __future__ import annotations

import pytest

from schemas.deadletter import DeadLetterReason
from streams.domain.changes import Tombstone
from streams.domain.ingest import KafkaRef, Rejected, decode

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
    ],
    ids=["not-json", "truncate", "delete-without-before", "missing-key", "unknown-table"],
)
def test_rejections(topic: str, value: bytes, reason: DeadLetterReason) -> None:
    result = decode(topic, value)
    assert isinstance(result, Rejected) and result.reason is reason


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
