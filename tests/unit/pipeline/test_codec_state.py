"""Table values round-trip exactly; course-scoped reads see one course and nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.commands import CommandKind, MoodleCommand
from schemas.course_events import AppliedCommand, CourseMeta, FactChange, FactsChanged, WriteInDoubt
from schemas.debezium import Table
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry
from streams.domain.fold import fold
from streams.domain.ingest import KafkaRef, decode
from streams.domain.policy import FoldPolicy
from streams.domain.student import StudentState, empty_student
from streams.pipeline.codec import (
    decode_event,
    decode_ledger,
    decode_student,
    encode,
    encode_event,
    encode_student,
)
from streams.pipeline.state import CourseTables, scan_prefix
from tests.unit.domain.apogee import Db
from tests.unit.domain.builders import desired_of

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def folded(oracle: bool) -> StudentState:
    db = Db(oracle=oracle)
    db.write(Table.INDIVIDU, cod_ind=7, cod_etu=21000007)
    for occ, state in ((1, "A"), (2, "E")):
        db.write(
            Table.INS_ADM_ETP,
            cod_anu="2026",
            cod_ind=7,
            cod_etp="L1INF",
            cod_vrs_vet=1,
            num_occ_iae=occ,
            eta_iae=state,
            eta_pmt_iae="P",
        )
    for elp in ("INF101", "INF102", "MAT101"):
        db.write(
            Table.IND_CONTRAT_ELP,
            cod_anu="2026",
            cod_ind=7,
            cod_etp="L1INF",
            cod_vrs_vet=1,
            cod_elp=elp,
            tem_prc_ice="N",
        )
    db.delete(
        Table.IND_CONTRAT_ELP,
        cod_anu="2026",
        cod_ind=7,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="MAT101",
    )
    state = empty_student(7)
    for offset, record in enumerate(db.records):
        out = decode(record.topic, record.value, KafkaRef(record.topic, 2, offset))
        for change in out if isinstance(out, tuple) else ():
            state, _ = fold(state, change, FoldPolicy())
    return state


@pytest.mark.parametrize("oracle", [False, True], ids=["postgresql", "oracle"])
def test_student_state_round_trips_with_deleted_rows_and_positions(oracle: bool) -> None:
    state = folded(oracle)
    assert decode_student(encode_student(state)) == state
    group = state.groups[("2026", "L1INF", 1)]
    assert group.ice["MAT101"].values is None  # tombstone memory survives the encoding
    assert group.ice["INF101"].ref.offset is not None


def test_student_state_encoding_is_compact() -> None:
    """Positional arrays, derivable parts left out: under 100 bytes per source row."""
    state = folded(False)
    rows = 1 + sum(len(g.iae) + len(g.ice) for g in state.groups.values())
    assert len(encode_student(state)) < 100 * rows


def test_a_position_whose_key_cannot_be_derived_still_round_trips() -> None:
    state = folded(True)
    person = state.person
    assert person is not None
    odd = replace(person, ref=replace(person.ref, key="0007", topic="elsewhere"))
    state = replace(state, person=odd)
    assert decode_student(encode_student(state)) == state


def test_desired_ledger_meta_and_events_round_trip() -> None:
    desired = desired_of(["21000001", "21000002"], NOW)
    tables = CourseTables({}, {}, {}, {})
    for entry in desired.entries.values():
        tables.put_desired(entry)
    assert tables.desired(desired.course) == desired
    ledger = LedgerEntry(
        "2026-INF101",
        "21000001",
        EnrolmentTuple("student", 5, 9, True),
        EnrolmentStatus.SUSPENDED,
        True,
        NOW,
        NOW,
        100,
        10,
    )
    assert decode_ledger(encode(ledger)) == ledger
    tables.put_meta(CourseMeta("2026-INF101", 10, NOW, paused=True))
    assert tables.meta("2026-INF101") == CourseMeta("2026-INF101", 10, NOW, paused=True)
    fact = next(iter(desired.entries.values())).facts[0]
    event = FactsChanged(course="2026-INF101", changes=(FactChange("student", fact, False),))
    assert decode_event(encode_event(event)) == event


def test_a_course_read_sees_only_its_own_members() -> None:
    table = {
        b"2026-INF1\x1fa\x1fstudent": b"1",
        b"2026-INF10\x1fb\x1fstudent": b"2",  # a course whose name extends the other's
        b"2026-INF1\x1fc\x1fteacher": b"3",
        b"2026-INF2\x1fd\x1fstudent": b"4",
    }
    keys = sorted(k for k, _ in scan_prefix(table, "2026-INF1\x1f"))
    assert keys == ["2026-INF1\x1fa\x1fstudent", "2026-INF1\x1fc\x1fteacher"]


def test_a_write_in_doubt_is_settled_by_its_writers_result_or_superseded_by_anothers() -> None:
    tables = CourseTables({}, {}, {}, {})
    command = MoodleCommand(
        CommandKind.ENROL, "2026-INF101", "21000001", EnrolmentTuple("student", 0, 0, False)
    )
    later = NOW + timedelta(seconds=5)

    def doubt(at: datetime, writer: str) -> None:
        tables.put_doubt(WriteInDoubt("2026-INF101", AppliedCommand(command, 100), 10, at, writer))

    doubt(later, "a")
    tables.settle_doubt("2026-INF101", "21000001", NOW, "a")  # an earlier call of a's
    assert set(tables.doubts("2026-INF101")) == {"21000001"}, "its later write is still out"
    assert tables.doubts("2026-INF10") == {}, "a course whose name extends another's"
    tables.settle_doubt("2026-INF101", "21000001", later, "a")
    assert tables.doubts("2026-INF101") == {}
    doubt(later, "a")
    tables.settle_doubt("2026-INF101", "21000001", NOW, "b")  # another clock: not compared
    assert tables.doubts("2026-INF101") == {}
    tables.settle_doubt("2026-INF101", "21000001", NOW, "b")  # nothing left: no error
