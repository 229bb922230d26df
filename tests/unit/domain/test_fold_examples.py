"""The APOGÉE cases the fold must get right, one example each (read as documentation).

Each test plays changes into the tiny database in ``apogee.py``, feeds the Debezium
records it emits through decode → fold → route → desired, and states what Moodle
should then hold, as (course idnumber, user idnumber, role).
"""

from __future__ import annotations

import pytest

from schemas.debezium import Table
from streams.domain.policy import FoldPolicy
from tests.unit.domain.apogee import Db, Record
from tests.unit.domain.pipeline import Pipeline

PERSON, IAE, ICE = Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP
ALICE = ("2026-INF101", "21000001", "student")


def enrolled_alice(db: Db, cod_etu: int | None = 21000001, eta_pmt_iae: str = "P") -> None:
    """Alice (COD_IND 1): a person, a valid IA in L1INF v1 for 2026, contract element INF101."""
    db.write(PERSON, cod_ind=1, cod_etu=cod_etu, lib_nom_pat_ind="MARTIN")
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae="E",
        eta_pmt_iae=eta_pmt_iae,
        dat_cre_iae=20_700,
    )
    db.write(
        ICE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="INF101",
        tem_prc_ice="N",
        dat_mod_ice=20_701,
    )


def fed(records: list[Record], policy: FoldPolicy | None = None) -> Pipeline:
    pipeline = Pipeline(policy)
    pipeline.feed(records)
    return pipeline


@pytest.mark.parametrize("oracle", [False, True], ids=["postgresql", "oracle"])
def test_a_followed_element_under_a_valid_enrolment_gives_a_student_enrolment(oracle: bool) -> None:
    db = Db(oracle=oracle)
    enrolled_alice(db)
    assert fed(db.records).desired() == {ALICE}


def test_a_duplicated_event_changes_nothing() -> None:
    db = Db()
    enrolled_alice(db)
    pipeline = fed(db.records)
    pipeline.feed(db.records)  # every event delivered a second time
    assert pipeline.desired() == {ALICE}
    assert pipeline.skipped == len([r for r in db.records if r.value is not None])


def test_snapshot_reads_count_as_rows_and_a_stale_snapshot_replay_is_ignored() -> None:
    db = Db()
    enrolled_alice(db)
    snapshot = db.snapshot()  # the connector's initial snapshot: op=r
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    pipeline = fed(snapshot)
    assert pipeline.desired() == {ALICE}
    pipeline.feed(db.records[-2:])  # the delete (and its tombstone)
    pipeline.feed(snapshot)  # the snapshot replayed: older than the delete
    assert pipeline.desired() == set()


def test_out_of_order_delivery_is_decided_by_source_position() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(
        ICE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="INF101",
        tem_prc_ice="O",
    )  # later: marked as acquired in an earlier year
    assert fed(list(reversed(db.records))).desired() == set()


def test_a_deleted_row_remembers_its_position_so_a_late_create_cannot_resurrect_it() -> None:
    db = Db()
    enrolled_alice(db)
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    create, delete = db.records[2], db.records[3]
    pipeline = fed([*db.records[:2], delete, create])  # the create arrives after the delete
    assert pipeline.desired() == set()


def test_a_kafka_tombstone_is_a_no_op() -> None:
    db = Db()
    enrolled_alice(db)
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    tombstone = db.records[-1]
    assert tombstone.value is None
    pipeline = fed([*db.records[:3], tombstone])  # tombstone seen without (before) its delete
    assert pipeline.desired() == {ALICE}
    pipeline.feed(db.records[3:])
    assert pipeline.desired() == set()


def test_a_primary_key_change_is_a_delete_and_a_create() -> None:
    db = Db()
    enrolled_alice(db)
    old = dict(db.tables[ICE][("2026", 1, "L1INF", 1, "INF101")])
    db.rekey(ICE, old, cod_elp="INF102")
    assert fed(db.records).desired() == {("2026-INF102", "21000001", "student")}


def test_an_update_whose_before_and_after_keys_differ_is_split_too() -> None:
    from streams.domain.ingest import decode

    record = (
        b'{"op": "u", "before": {"cod_anu": "2026", "cod_ind": 1, "cod_etp": "L1INF",'
        b' "cod_vrs_vet": 1, "cod_elp": "INF101"}, "after": {"cod_anu": "2026",'
        b' "cod_ind": 1, "cod_etp": "L1INF", "cod_vrs_vet": 1, "cod_elp": "INF102",'
        b' "tem_prc_ice": "N"}, "source": {"lsn": 5, "txId": 1}}'
    )
    changes = decode("apogee.apogee.ind_contrat_elp", record)
    assert isinstance(changes, tuple)
    assert [(c.item, c.values is None) for c in changes] == [("INF101", True), ("INF102", False)]


def test_no_enrolment_until_the_student_number_is_assigned() -> None:
    db = Db()
    enrolled_alice(db, cod_etu=None)
    pipeline = fed(db.records)
    assert pipeline.desired() == set()
    db.write(PERSON, cod_ind=1, cod_etu=21000001, lib_nom_pat_ind="MARTIN")  # COD_ETU issued later
    pipeline.feed(db.records[-1:])
    assert pipeline.desired() == {ALICE}


def test_a_changed_student_number_moves_the_enrolment_to_the_new_user() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(PERSON, cod_ind=1, cod_etu=21000009)
    assert fed(db.records).desired() == {("2026-INF101", "21000009", "student")}


def test_an_administrative_enrolment_cancelled_by_update_removes_the_enrolments() -> None:
    db = Db()
    enrolled_alice(db)
    pipeline = fed(db.records)
    iae = db.tables[IAE][("2026", 1, "L1INF", 1, 1)]
    db.write(IAE, **{**iae, "eta_iae": "A", "dat_annul_iae": 20_750})  # E → A: an UPDATE
    pipeline.feed(db.records[-1:])
    assert pipeline.desired() == set()
    db.write(IAE, **{**iae, "eta_iae": "E"})  # reinstated
    pipeline.feed(db.records[-1:])
    assert pipeline.desired() == {ALICE}


def test_another_valid_occurrence_keeps_the_stage_enrolment_in_force() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=2,
        eta_iae="E",
        eta_pmt_iae="P",
    )
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae="A",
        eta_pmt_iae="P",
    )
    assert fed(db.records).desired() == {ALICE}


def test_the_payment_rule_is_a_policy() -> None:
    db = Db()
    enrolled_alice(db, eta_pmt_iae="N")  # not paid
    assert fed(db.records).desired() == {ALICE}  # default: payment not required
    assert fed(db.records, FoldPolicy(paid_states=frozenset({"P"}))).desired() == set()


def test_an_element_acquired_in_an_earlier_year_is_not_followed() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(
        ICE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="INF102",
        tem_prc_ice="O",
    )
    assert fed(db.records).desired() == {ALICE}


def test_deleting_the_person_removes_every_enrolment() -> None:
    db = Db()
    enrolled_alice(db)
    db.delete(PERSON, cod_ind=1)
    assert fed(db.records).desired() == set()


def test_a_new_year_adds_courses_and_keeps_last_years() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(
        IAE,
        cod_anu="2027",
        cod_ind=1,
        cod_etp="L2INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae="E",
        eta_pmt_iae="P",
    )
    db.write(
        ICE,
        cod_anu="2027",
        cod_ind=1,
        cod_etp="L2INF",
        cod_vrs_vet=1,
        cod_elp="INF201",
        tem_prc_ice="N",
    )
    assert fed(db.records).desired() == {ALICE, ("2027-INF201", "21000001", "student")}


def test_a_retracted_fact_names_the_change_that_retracted_it() -> None:
    db = Db()
    enrolled_alice(db)
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    pipeline = fed(db.records)
    (entry,) = pipeline.courses["2026-INF101"].entries.values()
    cause = entry.withdrawn[0].provenance[0]
    assert (cause.table, cause.key, cause.log) == (
        "IND_CONTRAT_ELP",
        "2026|1|L1INF|1|INF101",
        db.log,
    )
