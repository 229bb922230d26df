"""The cut-over from the Database method, through the pipeline in one process against the
in-process emulator: adoption records the Database method's enrolments as foreign; the
``cutover`` finding (from Moodle's custom report) lets the plan enrol the desired ones through
the manual instance *beside* them, while a teacher's manual enrolment stays untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.audit import Outcome
from schemas.course_events import EnrolmentMethodsFound
from streams.domain.policy import PlanPolicy
from streams.emulator import RunningEmulator, running_emulator
from streams.emulator.state import Txn, UserEnrolment
from streams.tools import methods as methods_source
from streams.tools.cutover import finding, manual_found
from tests.unit.domain.apogee import Db
from tests.unit.pipeline.harness import Loop, seed
from tests.unit.pipeline.test_loop import etu, student

COURSE = "2026-INF101"
GRACE = PlanPolicy(grace=timedelta(minutes=10))
USERS = [etu(i) for i in range(1, 7)]  # Moodle ids 100…105


def uid(i: int) -> int:
    return 99 + i


def cutover_seed() -> dict[str, Any]:
    data = seed(USERS, [COURSE])
    data["courses"][0]["instances"] = [
        {"enrol": "manual", "enrolments": [{"userid": uid(3), "roleid": 3}]},  # a teacher's
        {
            "enrol": "database",
            "roleid": 5,
            "enrolments": [uid(1), uid(2), {"userid": uid(5), "status": 1}],
        },
    ]
    data["reports"] = [{"id": 7}]
    data["tokens"][0]["capabilities"] += ["moodle/reportbuilder:view"]
    return data


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with running_emulator(cutover_seed()) as running:
        yield running


def methods_of(emulator: RunningEmulator, i: int) -> dict[str, int]:
    """enrol plugin → user enrolment status (0 active) of user ``i`` in the course."""
    state = emulator.state
    return {
        state.instances[iid].enrol: state.ue[(iid, uid(i))].status
        for iid in state.user_instances(10, uid(i))
    }


async def cut_over(loop: Loop) -> EnrolmentMethodsFound:
    methods = await methods_source.from_report(loop.client, 7)
    found = finding(loop.tables, COURSE, methods[COURSE], GRACE)
    roster = await loop.applier.moodle.roster(COURSE, 10)
    event = EnrolmentMethodsFound(
        course=COURSE,
        database_only=found.released,
        manual=manual_found(roster, found.manual),
        by="test",
        at=datetime.now(UTC),
    )
    loop.courses.on_event(event)
    return event


def scenario(loop: Loop) -> None:
    db = Db()
    for i in (1, 3, 4, 5):  # 2 is held by the Database method, no longer wanted
        student(db, i)
    loop.feed(db)


async def test_writes_on_the_cutover_enrols_database_only_users_beside_and_leaves_the_rest(
    emulator: RunningEmulator,
) -> None:
    loop = Loop(emulator.url, GRACE)
    scenario(loop)
    await loop.settle()
    assert [r.command.user for r in loop.audits] == [etu(4)], "adoption: the others are foreign"
    event = await cut_over(loop)
    assert event.database_only == (etu(1), etu(2), etu(5))
    await loop.settle()
    assert sorted(r.command.user for r in loop.audits[1:]) == [etu(1), etu(5)]
    assert {r.outcome for r in loop.audits} == {Outcome.APPLIED}
    assert methods_of(emulator, 1) == {"manual": 0, "database": 0}, "beside, not instead"
    assert methods_of(emulator, 5) == {"manual": 0, "database": 1}
    assert methods_of(emulator, 2) == {"database": 0}, "not desired: never touched"
    assert methods_of(emulator, 3) == {"manual": 0}
    assert [r.shortname for r in emulator.state.user_roles(10, uid(3))] == ["editingteacher"]
    ledger = loop.tables.ledger(COURSE).entries
    assert ledger[etu(1)].owned and ledger[etu(5)].owned and not ledger[etu(3)].owned
    assert etu(2) not in ledger
    again = finding(
        loop.tables, COURSE, (await methods_source.from_report(loop.client, 7))[COURSE], GRACE
    )
    assert not again.changes, "run again: nothing to send"
    await loop.close()


async def test_in_shadow_mode_the_cutover_is_only_said_on_the_shadow_topic(
    emulator: RunningEmulator,
) -> None:
    loop = Loop(emulator.url, GRACE, shadow=True)
    scenario(loop)
    await loop.settle()
    await cut_over(loop)
    await loop.settle()
    said = sorted((r.outcome, r.command.kind.value, r.command.user) for r in loop.shadowed)
    assert said == [(Outcome.DRY_RUN, "enrol", etu(i)) for i in (1, 4, 5)]
    assert not [f for f in emulator.emulator.stats.by_function if f.startswith("enrol_manual")]
    assert methods_of(emulator, 1) == {"database": 0}
    await loop.close()


async def test_a_manual_enrolment_made_after_adoption_is_recorded_foreign_and_never_sent(
    emulator: RunningEmulator,
) -> None:
    """A teacher enrolled a student by hand after the course was adopted: enrol_manual_enrol_users
    would update that very enrolment, so the cut-over records it as foreign first."""
    loop = Loop(emulator.url, GRACE)
    scenario(loop)
    await loop.settle()
    late = uid(6)
    manual = emulator.state.manual_instance(10)
    assert manual is not None
    txn = Txn()
    emulator.state.put_ue(txn, UserEnrolment(manual.id, late, 0, 0, 0, 0, 0), 10)
    emulator.state.role_assign(txn, 10, late, (4, "", 0))
    event = await cut_over(loop)
    assert [f.user for f in event.manual] == [etu(6)]
    assert event.manual[0].enrolment.role == "teacher"
    assert not loop.tables.ledger(COURSE).entries[etu(6)].owned
    await loop.close()
