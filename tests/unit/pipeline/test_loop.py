"""The pipeline in one process (no Kafka) against the in-process emulator: each behaviour of
the applier read back from Moodle through its web services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from schemas.audit import Outcome
from schemas.control import ControlAction, ControlCommand
from schemas.course_events import CommandsApplied
from schemas.deadletter import DeadLetterReason
from schemas.debezium import Table
from streams.domain.policy import GuardPolicy, PlanPolicy
from streams.emulator import Faults, RunningEmulator, running_emulator
from tests.unit.domain.apogee import Db
from tests.unit.pipeline.harness import Loop, seed

PERSON, IAE, ICE = Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP
GRACE = PlanPolicy(grace=timedelta(minutes=10))
ICE_TOPIC = "apogee.apogee.ind_contrat_elp"


def student(
    db: Db,
    cod_ind: int,
    elps: tuple[str, ...] = ("INF101",),
    etu: int | None = None,
    etp: str = "L1INF",
) -> None:
    db.write(PERSON, cod_ind=cod_ind, cod_etu=etu if etu is not None else 21_000_000 + cod_ind)
    db.write(
        IAE, cod_anu="2026", cod_ind=cod_ind, cod_etp=etp, cod_vrs_vet=1, num_occ_iae=1, eta_iae="E"
    )
    for elp in elps:
        contract(db, cod_ind, elp, etp)
    db.commit()


def contract(db: Db, cod_ind: int, elp: str, etp: str = "L1INF") -> None:
    db.write(
        ICE,
        cod_anu="2026",
        cod_ind=cod_ind,
        cod_etp=etp,
        cod_vrs_vet=1,
        cod_elp=elp,
        tem_prc_ice="N",
    )


def drop(db: Db, cod_ind: int, elp: str, etp: str = "L1INF") -> None:
    db.delete(ICE, cod_anu="2026", cod_ind=cod_ind, cod_etp=etp, cod_vrs_vet=1, cod_elp=elp)
    db.commit()


def etu(cod_ind: int) -> str:
    return str(21_000_000 + cod_ind)


USERS = [etu(i) for i in range(1, 41)]


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with running_emulator(seed(USERS, ["2026-INF101", "2026-INF102"])) as running:
        yield running


@pytest.fixture
async def loop(emulator: RunningEmulator) -> AsyncIterator[Loop]:
    loop = Loop(emulator.url, GRACE)
    yield loop
    await loop.close()


async def test_a_contract_row_enrols_then_its_removal_suspends_after_grace(loop: Loop) -> None:
    db = Db()
    student(db, 1, ("INF101", "INF102"))
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active"}
    assert await loop.roster("2026-INF102") == {etu(1): "active"}

    drop(db, 1, "INF102")
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF102") == {etu(1): "active"}, "suspended before the grace"
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert await loop.roster("2026-INF102") == {etu(1): "suspended"}
    assert await loop.roster("2026-INF101") == {etu(1): "active"}

    contract(db, 1, "INF102")
    db.commit()
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF102") == {etu(1): "active"}
    applied = [a.command.kind.value for a in loop.audits if a.outcome is Outcome.APPLIED]
    assert applied == ["enrol", "enrol", "suspend", "reactivate"]


async def test_delete_and_reinsert_in_one_transaction_makes_no_moodle_call(
    loop: Loop, emulator: RunningEmulator
) -> None:
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    calls_before = len([a for a in loop.audits if a.outcome is Outcome.APPLIED])
    db.delete(ICE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, cod_elp="INF101")
    contract(db, 1, "INF101")
    db.commit()
    loop.feed(db)
    await loop.settle()
    await loop.later(GRACE.grace.total_seconds() * 2)
    assert await loop.roster("2026-INF101") == {etu(1): "active"}
    assert len([a for a in loop.audits if a.outcome is Outcome.APPLIED]) == calls_before


async def test_a_cancelled_administrative_enrolment_suspends_its_elements(loop: Loop) -> None:
    db = Db()
    student(db, 1, ("INF101", "INF102"))
    student(db, 2, ("INF101",))
    loop.feed(db)
    await loop.settle()
    db.write(
        IAE, cod_anu="2026", cod_ind=1, cod_etp="L1INF", cod_vrs_vet=1, num_occ_iae=1, eta_iae="A"
    )
    db.commit()
    loop.feed(db)
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "suspended", etu(2): "active"}
    assert await loop.roster("2026-INF102") == {etu(1): "suspended"}


async def test_a_teachers_own_enrolment_is_never_touched(emulator: RunningEmulator) -> None:
    state_seed = seed(USERS, ["2026-INF101"])
    # user 1 already enrolled by hand (as a teacher) before the reconciler ever ran
    state_seed["user_enrolments"] = [{"instanceid": 1, "userid": 100, "status": 0}]
    state_seed["role_assignments"] = [{"courseid": 10, "userid": 100, "roleid": 3}]
    async with running_emulator(state_seed) as running:
        loop = Loop(running.url, GRACE)
        try:
            db = Db()
            student(db, 1)  # APOGÉE also has them as a student: still foreign, never changed
            student(db, 2)
            loop.feed(db)
            await loop.settle()
            drop(db, 1, "INF101")
            loop.feed(db)
            await loop.later(GRACE.grace.total_seconds() + 1)
            assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "active"}
            touched = {a.command.user for a in loop.audits}
            assert touched == {etu(2)}
            ledger = loop.tables.ledger("2026-INF101")
            assert ledger.entries[etu(1)].owned is False
            assert ledger.entries[etu(1)].enrolment.role == "editingteacher"
        finally:
            await loop.close()


async def test_a_user_missing_from_moodle_is_parked_then_enrolled_when_created(
    loop: Loop, emulator: RunningEmulator
) -> None:
    db = Db()
    student(db, 1)
    student(db, 77, etu=29_999_999)  # no such Moodle user yet
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active"}
    parked = loop.applier.parking.users
    assert [(k, p.reason.value) for k, p in parked.items()] == [
        (("2026-INF101", "29999999"), "user_not_found")
    ]
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{emulator.url}/_emulator/users", json={"username": "late", "idnumber": "29999999"}
        )
        assert created.status_code == 200
    await loop.later(loop.applier.config.park_retry_s + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active", "29999999": "active"}


async def test_a_course_missing_from_moodle_is_parked_and_others_go_on(loop: Loop) -> None:
    db = Db()
    student(db, 1, ("INF101", "NOPE999"))
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active"}
    assert loop.applier.parking.courses["2026-NOPE999"].reason.value == "course_not_found"
    before = len(loop.events)
    await loop.later(loop.applier.config.park_retry_s + 1)  # looked up again, still missing
    assert len(loop.events) == before
    assert "2026-NOPE999" in loop.applier.parking.courses


async def test_transient_errors_are_retried_from_state(
    loop: Loop, emulator: RunningEmulator
) -> None:
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    loop.applier.moodle.remember_user(etu(2), 101)  # known: the enrol call itself fails
    emulator.emulator.injector.configure(Faults(fail_next=200, error_kind="http503"))
    student(db, 2)
    loop.feed(db)
    await loop.settle()
    assert [a.outcome for a in loop.audits] == [Outcome.APPLIED, Outcome.RETRY]
    assert loop.audits[-1].command.user == etu(2)
    emulator.emulator.injector.configure(Faults())
    await loop.later(loop.applier.config.retry_cap_s + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "active"}


def set_iae(db: Db, cod_ind: int, state: str) -> None:
    db.write(
        IAE,
        cod_anu="2026",
        cod_ind=cod_ind,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae=state,
    )
    db.commit()


@pytest.fixture
async def hanging(emulator: RunningEmulator) -> AsyncIterator[Loop]:
    """A loop whose client gives up after 0.2 s, at the first try: a call Moodle answers late
    has an unknown outcome."""
    loop = Loop(emulator.url, GRACE, timeout_s=0.2, max_attempts=1)
    yield loop
    await loop.close()


def hang_after_applying(emulator: RunningEmulator) -> None:
    emulator.emulator.injector.configure(Faults(timeout_rate=1, timeout_s=0.5, when="after"))


async def test_an_enrolment_of_unknown_outcome_no_longer_wanted_is_not_left_active(
    hanging: Loop, emulator: RunningEmulator
) -> None:
    loop, db = hanging, Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    loop.applier.moodle.remember_user(etu(2), 101)
    hang_after_applying(emulator)
    student(db, 2)  # enrolled in Moodle, but the answer never comes
    loop.feed(db)
    await loop.settle()
    assert loop.audits[-1].outcome is Outcome.RETRY
    emulator.emulator.injector.configure(Faults())
    set_iae(db, 2, "A")  # cancelled before the retry: desired and ledger both without them
    loop.feed(db)
    await loop.later(loop.applier.config.retry_cap_s + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "suspended"}


async def test_an_enrolment_moodle_refused_leaves_nothing_behind_when_no_longer_wanted(
    hanging: Loop, emulator: RunningEmulator
) -> None:
    loop, db = hanging, Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    loop.applier.moodle.remember_user(etu(2), 101)
    # Moodle answered with an error: the transaction was rolled back, nothing to settle
    emulator.emulator.injector.configure(Faults(fail_next=10, error_kind="dmlwriteexception"))
    student(db, 2)
    loop.feed(db)
    await loop.settle()
    assert loop.audits[-1].outcome is Outcome.RETRY
    emulator.emulator.injector.configure(Faults())
    set_iae(db, 2, "A")
    loop.feed(db)
    await loop.later(loop.applier.config.retry_cap_s + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active"}


async def test_a_removal_of_unknown_outcome_then_wanted_again_is_made_active_again(
    hanging: Loop, emulator: RunningEmulator
) -> None:
    loop, db = hanging, Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    hang_after_applying(emulator)
    drop(db, 1, "INF101")
    loop.feed(db)
    await loop.later(GRACE.grace.total_seconds() + 1)  # suspended in Moodle, answer lost
    assert loop.audits[-1].outcome is Outcome.RETRY
    emulator.emulator.injector.configure(Faults())
    contract(db, 1, "INF101")  # wanted again before the retry: as the ledger still says
    db.commit()
    loop.feed(db)
    await loop.later(loop.applier.config.retry_cap_s + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active"}


async def test_a_write_of_unknown_outcome_is_settled_by_the_next_owner_of_the_course(
    hanging: Loop, emulator: RunningEmulator
) -> None:
    """The doubt outlives the process that had it: the worker restarted (or another one
    after a rebalance) finds it in the tables, written ahead of the call."""
    loop, db = hanging, Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    loop.applier.moodle.remember_user(etu(2), 101)
    hang_after_applying(emulator)
    student(db, 2)  # enrolled in Moodle, but the answer never comes
    loop.feed(db)
    await loop.settle()
    assert loop.audits[-1].outcome is Outcome.RETRY
    emulator.emulator.injector.configure(Faults())
    loop.restart()  # the worker dies: what it remembered of the doubt goes with it
    set_iae(db, 2, "A")  # cancelled: desired and ledger both without them
    loop.feed(db)
    await loop.later(loop.applier.config.retry_cap_s + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "suspended"}
    assert loop.tables.doubts("2026-INF101") == {}


async def test_a_worker_killed_between_moodles_answer_and_its_result_leaves_nothing_behind(
    loop: Loop,
) -> None:
    """Moodle applied the call, the worker died before its result reached Kafka: the next
    owner of the course, its plan leaving the user alone, sets Moodle back to the ledger."""
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    loop.fold_later = True  # results on their way to Kafka when the worker is killed
    student(db, 2)
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "active"}
    assert [type(e) for e in loop.unfolded] == [CommandsApplied]
    assert set(loop.tables.doubts("2026-INF101")) == {etu(2)}
    loop.restart()  # the result is lost with the process
    set_iae(db, 2, "A")  # then the student's enrolment is cancelled
    loop.feed(db)
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "suspended"}
    assert loop.tables.doubts("2026-INF101") == {}


async def test_a_removal_killed_before_its_result_is_undone_when_wanted_again(
    loop: Loop,
) -> None:
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    drop(db, 1, "INF101")
    loop.feed(db)
    loop.fold_later = True
    await loop.later(GRACE.grace.total_seconds() + 1)  # suspended; the result never folded
    assert await loop.roster("2026-INF101") == {etu(1): "suspended"}
    loop.restart()
    contract(db, 1, "INF101")  # wanted again: as the ledger (never told) still says
    db.commit()
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active"}
    assert loop.tables.doubts("2026-INF101") == {}


async def test_writes_moodle_answered_are_not_left_in_doubt(
    hanging: Loop, emulator: RunningEmulator
) -> None:
    loop, db = hanging, Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    assert loop.tables.doubts("2026-INF101") == {}  # applied: settled by its result
    loop.applier.moodle.remember_user(etu(2), 101)
    emulator.emulator.injector.configure(Faults(fail_next=10, error_kind="dmlwriteexception"))
    student(db, 2)  # refused, rolled back: nothing in doubt
    loop.feed(db)
    await loop.settle()
    assert loop.audits[-1].outcome is Outcome.RETRY
    assert loop.tables.doubts("2026-INF101") == {}
    hang_after_applying(emulator)
    await loop.later(loop.applier.config.retry_cap_s + 1)  # the retry: answer lost
    assert set(loop.tables.doubts("2026-INF101")) == {etu(2)}


async def test_one_invalid_item_is_isolated_and_the_rest_applied(emulator: RunningEmulator) -> None:
    bad_seed = seed(USERS, ["2026-INF101"])
    bad_seed["users"].append(
        {"id": 999, "username": "gone", "idnumber": "28888888", "deleted": False}
    )
    async with running_emulator(bad_seed) as running:
        loop = Loop(running.url, GRACE)
        try:
            db = Db()
            for i in (1, 2, 3):
                student(db, i)
            student(db, 88, etu=28_888_888)
            loop.feed(db)
            loop.applier.moodle.remember_user("28888888", 424242)  # a stale id: Moodle rejects
            await loop.settle()
            assert await loop.roster("2026-INF101") == {etu(i): "active" for i in (1, 2, 3)}
            rejected = [a for a in loop.audits if a.outcome is Outcome.REJECTED]
            assert [a.command.user for a in rejected] == ["28888888"]
            assert ("2026-INF101", "28888888") in loop.applier.parking.users
        finally:
            await loop.close()


async def test_mass_removal_is_held_until_approved_and_other_courses_go_on(
    emulator: RunningEmulator,
) -> None:
    policy = PlanPolicy(grace=timedelta(minutes=10), guard=GuardPolicy(course_max_count=30))
    loop = Loop(emulator.url, policy)
    try:
        db = Db()
        for i in range(1, 41):
            student(db, i, ("INF101",) if i > 2 else ("INF101", "INF102"))
        loop.feed(db)
        await loop.settle()
        for i in range(1, 16):  # 15 of 40 = 37 %: a mass removal
            drop(db, i, "INF101")
        drop(db, 1, "INF102")  # an ordinary removal elsewhere
        loop.feed(db)
        await loop.later(policy.grace.total_seconds() + 1)
        roster = await loop.roster("2026-INF101")
        assert sum(s == "active" for s in roster.values()) == 40, "held, nothing suspended"
        assert loop.applier.held == {"2026-INF101": 15, "2026-INF102": 0}
        assert (await loop.roster("2026-INF102"))[etu(1)] == "suspended"
        held = [a for a in loop.audits if a.outcome is Outcome.HELD]
        assert len(held) == 15

        approval = ControlCommand(
            action=ControlAction.APPROVE, course="2026-INF101", at=loop.clock.wall(), by="test"
        )
        loop.courses.on_control(approval)
        await loop.settle()
        roster = await loop.roster("2026-INF101")
        assert sorted(u for u, s in roster.items() if s == "suspended") == sorted(
            etu(i) for i in range(1, 16)
        )
    finally:
        await loop.close()


async def test_a_paused_course_gets_no_call_until_resumed(loop: Loop) -> None:
    loop.courses.on_control(
        ControlCommand(action=ControlAction.PAUSE, course="2026-INF101", at=loop.clock.wall())
    )
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {}
    loop.courses.on_control(
        ControlCommand(action=ControlAction.RESUME, course="2026-INF101", at=loop.clock.wall())
    )
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active"}


async def test_replayed_records_make_no_second_call(loop: Loop) -> None:
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    events = len(loop.events)
    loop._fed = 0  # the connector restarted: every record again
    loop.feed(db)
    await loop.settle()
    assert len(loop.events) == events
    assert sum(isinstance(e, CommandsApplied) for e in loop.events) == 1


async def test_bad_records_go_to_the_dead_letter_topic_and_the_rest_converges(loop: Loop) -> None:
    loop.raw(ICE_TOPIC, b"{not json")
    loop.raw(ICE_TOPIC, b'{"op": "c", "after": {"cod_anu": "2026"}, "source": {"lsn": 1}}')
    loop.raw(ICE_TOPIC, b'{"op": "t", "source": {"lsn": 2}}')
    loop.raw("apogee.apogee.unknown_table", b"{}")
    loop.raw(ICE_TOPIC, b"\xff\xfe invalid utf-8")
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    assert [d.reason for d in loop.dead_letters] == [
        DeadLetterReason.MALFORMED_JSON,
        DeadLetterReason.INVALID_ENVELOPE,
        DeadLetterReason.UNSUPPORTED_OPERATION,
        DeadLetterReason.UNKNOWN_TABLE,
        DeadLetterReason.MALFORMED_JSON,
    ]
    assert loop.dead_letters[-1].value == "\\xff\\xfe invalid utf-8"
    assert loop.dead_letters[0].offset == 0 and loop.dead_letters[0].topic == ICE_TOPIC
    assert await loop.roster("2026-INF101") == {etu(1): "active"}


async def test_every_applied_change_is_audited_with_its_lineage(loop: Loop) -> None:
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    (record,) = [a for a in loop.audits if a.outcome is Outcome.APPLIED]
    assert record.ws_function == "enrol_manual_enrol_users"
    assert record.moodle_user_id == 100 and record.moodle_course_id == 10
    cause = record.command.facts[0].provenance[0]
    assert cause.table == "IND_CONTRAT_ELP" and cause.key == "2026|1|L1INF|1|INF101"
    assert cause.topic == ICE_TOPIC and cause.offset is not None
    assert cause.log > 0 and cause.tx is not None and cause.committed_ms is not None
    assert record.latency_s is not None and record.latency_s >= 0


async def test_results_not_yet_in_the_ledger_are_not_sent_twice(loop: Loop) -> None:
    """The results agent lags (a backlog): the applier plans against ledger + overlay."""
    loop.fold_later = True
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()  # adopts, plans against the overlay, enrols
    student(db, 2)  # the course changes again before any result is folded
    loop.feed(db)
    await loop.settle()
    applied = [e for e in loop.events if isinstance(e, CommandsApplied)]
    sent = [a.command.user for e in applied for a in e.applied]
    assert sent == [etu(1), etu(2)], "each enrolment sent once"
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "active"}
    assert loop.tables.ledger("2026-INF101").entries == {}, "nothing folded yet"
    assert len(loop.applier.overlay) == 1
    loop.fold()
    assert set(loop.tables.ledger("2026-INF101").entries) == {etu(1), etu(2)}
    assert len(loop.applier.overlay) == 0
    await loop.settle()
    assert len([e for e in loop.events if isinstance(e, CommandsApplied)]) == 2


async def test_the_global_guard_counts_what_was_applied_since_a_course_was_last_planned(
    loop: Loop,
) -> None:
    """Regression: courses are not re-planned after their results fold, so the global guard's
    population must follow the applies. It stayed at what each course held when last planned
    (0 for INF102 here, so 25 in all instead of 50) and held 2 ordinary removals of INF101
    as a 'mass removal' (> 5 % of 25)."""
    db = Db()
    for i in range(1, 26):
        student(db, i, ("INF101", "INF102"))
    loop.feed(db)
    await loop.settle()
    drop(db, 1, "INF101")
    drop(db, 2, "INF101")
    loop.feed(db)
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert loop.applier.held.get("2026-INF101") == 0
    roster = await loop.roster("2026-INF101")
    assert sorted(u for u, s in roster.items() if s == "suspended") == [etu(1), etu(2)]


async def test_shadow_mode_writes_nothing_then_converges_when_turned_off(
    emulator: RunningEmulator,
) -> None:
    shadow = Loop(emulator.url, GRACE, shadow=True)
    db = Db()
    student(db, 1)
    student(db, 2)
    shadow.feed(db)
    await shadow.settle()
    await shadow.later(60)  # planned again: still nothing written, nothing shadowed twice
    writes = {
        f: n for f, n in emulator.emulator.stats.by_function.items() if f.startswith("enrol_manual")
    }
    assert writes == {}
    assert await shadow.roster("2026-INF101") == {}
    assert sorted(r.command.user for r in shadow.shadowed) == [etu(1), etu(2)]
    assert {r.outcome for r in shadow.shadowed} == {Outcome.DRY_RUN}
    assert shadow.shadowed[0].command.facts[0].provenance[0].table == "IND_CONTRAT_ELP"
    await shadow.close()

    live = Loop(emulator.url, GRACE)  # the same tables, shadow mode off: no replay
    live.tables, live.students = shadow.tables, shadow.students
    live.applier.state = shadow.tables
    live.courses.tables = shadow.tables
    live.applier.sweep()
    await live.settle()
    assert await live.roster("2026-INF101") == {etu(1): "active", etu(2): "active"}
    await live.close()


async def test_shadow_mode_says_what_it_would_suspend_and_hold_as_if_it_had_written(
    emulator: RunningEmulator,
) -> None:
    """The would-be enrolments are kept as the ledger would hold them (in memory only): a
    student who leaves is a would-be suspension after the grace window, a mass removal is
    held by the guard — each said once, on the shadow topic (never the audit topic)."""
    guard = PlanPolicy(
        grace=timedelta(minutes=10),
        guard=GuardPolicy(course_max_count=3, course_max_share=1.0, global_max_share=1.0),
    )
    shadow = Loop(emulator.url, guard, shadow=True)
    db = Db()
    for i in range(1, 11):
        student(db, i)
    shadow.feed(db)
    await shadow.settle()
    drop(db, 1, "INF101")
    shadow.feed(db)
    await shadow.later(GRACE.grace.total_seconds() + 1)
    await shadow.later(60)  # planned again: said once
    for i in range(2, 8):  # a mass removal: 6 > 3
        drop(db, i, "INF101")
    shadow.feed(db)
    await shadow.later(GRACE.grace.total_seconds() + 1)
    await asyncio.sleep(0)  # held records go out in a task
    said = [(r.outcome, r.command.kind.value, r.command.user) for r in shadow.shadowed]
    assert said[:10] == [(Outcome.DRY_RUN, "enrol", etu(i)) for i in range(1, 11)]
    assert said[10] == (Outcome.DRY_RUN, "suspend", etu(1))
    assert sorted(said[11:]) == [(Outcome.HELD, "suspend", etu(i)) for i in range(2, 8)]
    assert shadow.shadowed[10].command.facts[0].provenance[0].table == "IND_CONTRAT_ELP"
    assert shadow.audits == [], "nothing done in Moodle, nothing on the audit topic"
    assert shadow.applier.held == {"2026-INF101": 6}
    assert [e for e in shadow.events if isinstance(e, CommandsApplied)] == []
    stats = emulator.emulator.stats.by_function
    assert not [f for f in stats if f.startswith("enrol_manual") or f.startswith("core_role")]
    assert {e.owned for e in shadow.tables.ledger("2026-INF101").entries.values()} <= {False}
    await shadow.close()


async def test_additions_plan_only_the_added_users_removals_the_whole_course(loop: Loop) -> None:
    whole: list[str] = []
    read_whole = loop.tables.desired

    def counted(course: str) -> Any:
        whole.append(course)
        return read_whole(course)

    loop.tables.desired = counted  # type: ignore[method-assign]
    db = Db()
    student(db, 1)
    loop.feed(db)
    await loop.settle()
    whole.clear()
    for i in (2, 3, 4):
        student(db, i)
        loop.feed(db)
        await loop.settle()
    assert whole == [], "additions read only the added users' entries"
    assert len(await loop.roster("2026-INF101")) == 4
    drop(db, 2, "INF101")
    loop.feed(db)
    await loop.settle()
    assert whole == ["2026-INF101"], "a removal plans the whole course (grace, guard)"


async def test_a_crash_between_the_state_write_and_the_sends_loses_nothing(loop: Loop) -> None:
    """The worker wrote the students' states (RocksDB keeps them) but died before its course
    events left; on restart the same records come again (offsets were not committed)."""
    db = Db()
    student(db, 1, ("INF101", "INF102"))
    student(db, 2)
    emit = loop.view.emit
    loop.view.emit = lambda _: None  # the crash: these sends never reach the course topic
    loop.feed(db)
    assert loop.students, "the state was written"
    loop.view.emit = emit  # the restart: same local state, records replayed
    loop.view.forget_recent()
    loop._fed = 0
    loop.feed(db)
    await loop.settle()
    assert await loop.roster("2026-INF101") == {etu(1): "active", etu(2): "active"}
    assert await loop.roster("2026-INF102") == {etu(1): "active"}

    drop(db, 1, "INF102")  # then a removal lost the same way
    fed = loop._fed
    loop.view.emit = lambda _: None
    loop.feed(db)
    loop.view.emit = emit
    loop._fed = fed
    loop.feed(db)
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert await loop.roster("2026-INF102") == {etu(1): "suspended"}
    applied = [a.command.kind.value for a in loop.audits if a.outcome is Outcome.APPLIED]
    assert sorted(applied) == ["enrol", "enrol", "enrol", "suspend"], "each change once"


async def test_a_sweep_lets_the_rest_of_the_worker_run_between_courses(loop: Loop) -> None:
    """At start-up and after a rebalance every owned course is planned; with nothing to send a
    cycle never waits on Moodle, and at 3 M enrolments it held the event loop for seconds at a
    time (HTTP probes, agents and commits stalled). Planning yields between courses."""
    db = Db()
    student(db, 1, ("INF101", "INF102"))
    loop.feed(db)
    await loop.settle()
    turns = 0

    async def elsewhere() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(elsewhere())
    await asyncio.sleep(0)
    before = turns
    courses = ["2026-INF101", "2026-INF102", "2026-INF101", "2026-INF102"]
    await loop.applier.cycle(courses)
    during = turns - before
    other.cancel()
    assert during >= len(courses) - 1
