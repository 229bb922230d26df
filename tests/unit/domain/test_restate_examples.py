"""A worker crashed after writing a student's state but before the effects left: when the same
records come again, ``restate`` gives their effects as they stand now (one example each)."""

from __future__ import annotations

from schemas.debezium import Table
from schemas.facts import FactKind, MembershipFact
from streams.domain.changes import RowChange, Tombstone
from streams.domain.fold import FactAsserted, FactRetracted, fold, restate
from streams.domain.ingest import decode
from streams.domain.policy import FoldPolicy
from streams.domain.student import StudentState, empty_student
from tests.unit.domain.apogee import Db, Record
from tests.unit.domain.test_fold_examples import enrolled_alice

PERSON, IAE, ICE = Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP
POLICY = FoldPolicy()
GROUP = ("2026", "L1INF", 1)
INF101 = MembershipFact("21000001", FactKind.ELEMENT, *GROUP, "INF101", cod_ind=1)
INF102 = MembershipFact("21000001", FactKind.ELEMENT, *GROUP, "INF102", cod_ind=1)
STAGE = MembershipFact("21000001", FactKind.STAGE, *GROUP, cod_ind=1)


def changes(records: list[Record]) -> list[RowChange]:
    out: list[RowChange] = []
    for record in records:
        decoded = decode(record.topic, record.value)
        if isinstance(decoded, tuple):
            out.extend(c for c in decoded if isinstance(c, RowChange))
    return out


def folded(records: list[Record]) -> StudentState:
    state = empty_student(1)
    for change in changes(records):
        state, _ = fold(state, change, POLICY)
    return state


def facts(effects: tuple[object, ...], kind: type) -> set[MembershipFact]:
    return {e.fact for e in effects if isinstance(e, kind)}  # type: ignore[attr-defined]


def test_a_replayed_contract_row_asserts_its_element_fact_again() -> None:
    db = Db()
    enrolled_alice(db)
    state = folded(db.records)
    last = changes(db.records)[-1]
    assert fold(state, last, POLICY) == (state, ())  # fold: a duplicate, nothing
    effects = restate(state, last, POLICY)
    assert effects == (FactAsserted(effects[0].fact),)
    assert effects[0].fact == INF101
    assert effects[0].fact.provenance[0] == last.ref, "the replayed change is the cause"


def test_a_replayed_delete_retracts_the_fact_its_row_supported() -> None:
    db = Db()
    enrolled_alice(db)
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    state = folded(db.records)
    delete = changes(db.records)[-1]
    assert delete.values is None
    effects = restate(state, delete, POLICY)
    assert facts(effects, FactRetracted) == {INF101}
    assert facts(effects, FactAsserted) == set()
    assert effects[0].fact.provenance == (delete.ref,)


def test_a_replayed_cancellation_of_the_administrative_enrolment_retracts_the_group() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(
        ICE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="INF102",
        tem_prc_ice="N",
        dat_mod_ice=20_702,
    )
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae="A",  # cancelled
        eta_pmt_iae="P",
        dat_cre_iae=20_700,
    )
    state = folded(db.records)
    effects = restate(state, changes(db.records)[-1], POLICY)
    assert facts(effects, FactRetracted) == {STAGE, INF101, INF102}
    assert facts(effects, FactAsserted) == set()
    # retractions come first, as fold gives them
    assert isinstance(effects[0], FactRetracted) and isinstance(effects[-1], FactRetracted)


def test_a_replayed_administrative_enrolment_asserts_the_whole_group() -> None:
    db = Db()
    enrolled_alice(db)
    state = folded(db.records)
    iae = next(c for c in changes(db.records) if c.table is IAE)
    effects = restate(state, iae, POLICY)
    assert facts(effects, FactAsserted) == {STAGE, INF101}
    assert facts(effects, FactRetracted) == set()


def test_a_replayed_person_row_restates_every_group() -> None:
    db = Db()
    enrolled_alice(db)
    db.write(
        ICE,
        cod_anu="2026",
        cod_ind=1,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="INF102",
        tem_prc_ice="O",  # not followed: a possible fact, not held
        dat_mod_ice=20_702,
    )
    state = folded(db.records)
    person = changes(db.records)[0]
    effects = restate(state, person, POLICY)
    assert facts(effects, FactAsserted) == {STAGE, INF101}
    assert facts(effects, FactRetracted) == {INF102}
    assert [type(e) for e in effects] == [FactRetracted, FactAsserted, FactAsserted]


def test_an_older_change_than_the_row_holds_restates_nothing() -> None:
    db = Db()
    enrolled_alice(db)
    first = changes(db.records)[-1]
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    state = folded(db.records)
    assert restate(state, first, POLICY) == (), "the later delete will be delivered again too"


def test_nothing_is_restated_without_a_student_number_a_tombstone_or_another_student() -> None:
    db = Db()
    enrolled_alice(db, cod_etu=None)
    state = folded(db.records)
    last = changes(db.records)[-1]
    assert restate(state, last, POLICY) == ()
    db2 = Db()
    enrolled_alice(db2)
    state2 = folded(db2.records)
    assert restate(state2, Tombstone("ind_contrat_elp"), POLICY) == ()
    other = changes(db2.records)[-1]
    assert restate(empty_student(2), other, POLICY) == ()
    assert restate(empty_student(1), other, POLICY) == (), "a row the state never saw"
