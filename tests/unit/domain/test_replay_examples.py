"""Replay: the desired state rebuilt from records with the same pure functions the worker runs."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from schemas.debezium import Table
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from schemas.mapping import CourseMappingRule, CourseTarget
from streams.domain.cohorts import cohort_mapping
from streams.domain.desired import CourseChange
from streams.domain.ingest import KafkaRef
from streams.domain.mapping import build_mapping
from streams.domain.replay import Replay, roster, roster_digest
from tests.unit.domain.apogee import Db, Record
from tests.unit.domain.oracle import desired_from_tables

T0 = datetime(2026, 9, 1, 8, 0)
PRECEDENCE = ("editingteacher", "teacher", "student")
PERSON, IAE, ICE = Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP


def student(db: Db, ind: int, *elements: str, state: str = "E") -> None:
    db.write(PERSON, cod_ind=ind, cod_etu=21000000 + ind, lib_nom_pat_ind="X")
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=ind,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae=state,
        eta_pmt_iae="P",
    )
    for elp in elements:
        db.write(
            ICE,
            cod_anu="2026",
            cod_ind=ind,
            cod_etp="L1INF",
            cod_vrs_vet=1,
            cod_elp=elp,
            tem_prc_ice="N",
        )
    db.commit()


def feed(replay: Replay, records: list[Record], start: datetime = T0, step_s: float = 0.3) -> None:
    for offset, record in enumerate(records):
        at = start + timedelta(seconds=offset * step_s)
        replay.cdc(record.topic, record.value, KafkaRef(record.topic, 0, offset), at)


def rosters(replay: Replay) -> set[tuple[str, str, str]]:
    return {
        (course, user, role)
        for course, desired in replay.finish().items()
        for user, role in roster(desired, PRECEDENCE)
    }


def test_a_replay_rebuilds_what_the_tables_say() -> None:
    db = Db()
    for ind in range(1, 40):
        student(db, ind, "INF101", "INF102" if ind % 2 else "MAT101")
    db.delete(ICE, cod_anu="2026", cod_ind=3, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=4,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae="A",
        eta_pmt_iae="P",
    )
    replay = Replay(build_mapping(()))
    feed(replay, db.records)
    assert rosters(replay) == desired_from_tables(db.tables)
    assert replay.counts["folded"] > 0 and replay.counts["tombstone"] == 1


def test_records_replayed_twice_change_nothing() -> None:
    db = Db()
    student(db, 1, "INF101")
    replay = Replay(build_mapping(()))
    feed(replay, db.records + db.records)
    assert rosters(replay) == {("2026-INF101", "21000001", "student")}
    assert replay.counts["duplicate"] == len(db.records)  # the second time round


def test_another_mapping_replays_into_other_courses() -> None:
    db = Db()
    student(db, 1, "INF101", "INF102")
    rule = CourseMappingRule(
        rule_id="r", cod_elp="INF102", targets=(CourseTarget(course="{cod_anu}-INF101"),)
    )
    replay = Replay(build_mapping((rule,)))
    feed(replay, db.records)
    assert rosters(replay) == {("2026-INF101", "21000001", "student")}
    (entry,) = replay.finish()["2026-INF101"].entries.values()
    assert {f.cod_elp for f in entry.facts} == {"INF101", "INF102"}


def test_only_the_courses_asked_for_are_kept() -> None:
    db = Db()
    student(db, 1, "INF101", "INF102")
    replay = Replay(build_mapping(()), courses=frozenset({"2026-INF102"}))
    feed(replay, db.records)
    assert set(replay.finish()) == {"2026-INF102"}


def test_withdrawal_times_are_the_records_to_the_second() -> None:
    db = Db()
    student(db, 1, "INF101")
    mark = len(db.records)
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    replay = Replay(build_mapping(()))
    feed(replay, db.records[:mark], T0)
    feed(replay, db.records[mark:], T0 + timedelta(hours=2, milliseconds=700))
    (entry,) = replay.finish()["2026-INF101"].entries.values()
    assert not entry.present and entry.since == T0 + timedelta(hours=2)


def test_a_large_burst_within_one_second_is_applied_whole() -> None:
    db = Db()
    for ind in range(1, 1200):
        student(db, ind, "INF101")
    replay = Replay(build_mapping(()))
    feed(replay, db.records, step_s=0.0)
    assert len(roster(replay.finish()["2026-INF101"], PRECEDENCE)) == 1199


def test_manual_facts_join_and_only_manual_ones_are_taken_from_course_events() -> None:
    db = Db()
    student(db, 1, "INF101")
    replay = Replay(build_mapping(()))
    feed(replay, db.records)
    ref = SourceRef("CSV", "t.csv:2", 2, "b")
    teacher = MembershipFact(
        "99",
        FactKind.MANUAL,
        "",
        course="2026-INF101",
        role="editingteacher",
        origin="csv",
        provenance=(ref,),
    )
    apogee = MembershipFact("55", FactKind.ELEMENT, "2026", "L1INF", 1, "INF101")
    replay.manual(
        "2026-INF101",
        [
            CourseChange("2026-INF101", "editingteacher", teacher, True),
            CourseChange("2026-INF101", "student", apogee, True),
        ],
        T0,
    )
    assert rosters(replay) == {
        ("2026-INF101", "21000001", "student"),
        ("2026-INF101", "99", "editingteacher"),
    }
    assert replay.counts["manual"] == 1


def test_cohort_mapping_replays_stage_facts_into_cohorts() -> None:
    db = Db()
    student(db, 1, "INF101")
    student(db, 2, state="A")
    replay = Replay(cohort_mapping("IA-{cod_anu}-{cod_etp}-{cod_vrs_vet}"))
    feed(replay, db.records)
    assert rosters(replay) == {("IA-2026-L1INF-1", "21000001", "member")}


def test_rejected_records_are_counted_and_skipped() -> None:
    replay = Replay(build_mapping(()))
    where = KafkaRef("apogee.apogee.individu", 0, 0)
    replay.cdc("apogee.apogee.individu", b"{not json", where, T0)
    replay.cdc("apogee.apogee.unknown", b"{}", where, T0)
    assert replay.counts["rejected"] == 2 and replay.finish() == {}


def test_the_digest_is_the_sha256_of_the_sorted_tab_separated_lines() -> None:
    import hashlib

    expected = hashlib.sha256(b"1\tstudent\n2\tteacher\n").hexdigest()
    assert roster_digest([("2", "teacher"), ("1", "student")]) == expected


def test_the_digest_depends_on_the_roster_not_its_order() -> None:
    members = [(str(u), "student") for u in range(50)]
    shuffled = members[:]
    random.Random(7).shuffle(shuffled)
    assert roster_digest(members) == roster_digest(shuffled)
    assert roster_digest(members) != roster_digest(members[1:])
    assert roster_digest([("1", "student")]) != roster_digest([("1", "teacher")])
