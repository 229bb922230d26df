"""The drift check and the cohort stage in one process (no Kafka), against the in-process
emulator: Moodle changed behind the reconciler's back is found and repaired through the plan;
stage facts keep a cohort per stage version and year, and Moodle's cohort sync enrols it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from schemas.audit import AuditRecord, Outcome
from schemas.course_events import EnrolmentsObserved
from schemas.debezium import Table
from streams import metrics
from streams.applier import ApplierConfig
from streams.applier.gateway import Roster
from streams.domain.cohorts import cohort_policy
from streams.domain.drift import DriftKind
from streams.domain.policy import GuardPolicy, PlanPolicy
from streams.emulator import RunningEmulator, running_emulator
from streams.moodle import Enrolment, Unenrolment
from streams.pipeline.cohorts import CohortGateway, Cohorts
from streams.pipeline.drift import DriftWatch
from streams.pipeline.state import CourseTables
from tests.unit.domain.apogee import Db
from tests.unit.pipeline.harness import Loop, seed
from tests.unit.pipeline.test_loop import GRACE, drop, etu, student

COURSE = "2026-INF101"
COHORT = "IA-2026-L1INF-1"
USERS = [etu(i) for i in range(1, 41)]
COHORT_CAPS = ["moodle/cohort:manage", "moodle/cohort:assign", "moodle/cohort:view"]


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    data = seed(USERS, [COURSE])
    data["tokens"][0]["capabilities"] += COHORT_CAPS
    async with running_emulator(data) as running:
        yield running


@pytest.fixture
async def loop(emulator: RunningEmulator) -> AsyncIterator[Loop]:
    loop = Loop(emulator.url, GRACE)
    yield loop
    await loop.close()


def watch(loop: Loop, repair: bool, confirm_s: float = 0.0, gateway: Any = None) -> DriftWatch:
    async def publish(event: EnrolmentsObserved) -> None:
        loop.courses.on_event(event)  # as the course agent would, from the course topic

    return DriftWatch(
        loop.tables,
        gateway or loop.applier.moodle,
        GRACE,
        lambda course: False,
        publish,
        interval_s=3600,
        confirm_s=confirm_s,
        repair=repair,
        wall=loop.clock.wall,
    )


def gauge(kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value("reconciler_drift_enrolments", {"kind": kind})
    assert value is not None
    return value


def gauges() -> list[float]:
    return [gauge(kind) for kind in metrics.DRIFT_KINDS]


async def enrolled(loop: Loop, *inds: int) -> Db:
    db = Db()
    for i in inds:
        student(db, i)
    loop.feed(db)
    await loop.settle()
    assert await loop.roster(COURSE) == {etu(i): "active" for i in inds}
    return db


async def tamper(loop: Loop) -> None:
    """A teacher unenrols student 1, suspends student 2 and makes student 3 a teacher too."""
    await loop.client.enrol_manual_unenrol_users([Unenrolment(100, 10)])
    await loop.client.enrol_manual_enrol_users([Enrolment(101, 10, 5, suspend=True)])
    await loop.client.enrol_manual_enrol_users([Enrolment(102, 10, 4)])


async def test_the_drift_check_reports_and_sets_the_gauge_and_repairs_only_when_asked(
    loop: Loop,
) -> None:
    await enrolled(loop, 1, 2, 3, 4)
    await tamper(loop)
    found = await watch(loop, repair=False).check_all()
    assert {(d.user, d.kind) for d in found[COURSE].items} == {
        (etu(1), DriftKind.MISSING),
        (etu(2), DriftKind.WRONG_STATUS),
        (etu(3), DriftKind.WRONG_ROLE),
    }
    assert metrics.DRIFT_KINDS == ("missing", "extra", "mismatched")
    assert gauges() == [1, 0, 2]  # a wrong status and a wrong role are mismatched
    await loop.settle()
    assert etu(1) not in await loop.roster(COURSE), "report only: nothing repaired"

    audits = len(loop.audits)
    repaired = await watch(loop, repair=True).check_all()
    assert set(repaired) == {COURSE}
    await loop.settle()
    assert await loop.roster(COURSE) == {etu(i): "active" for i in (1, 2, 3, 4)}
    kinds = sorted((a.command.kind.value, a.command.user) for a in loop.audits[audits:])
    assert kinds == [("change_role", etu(3)), ("enrol", etu(1)), ("reactivate", etu(2))]
    assert all(a.outcome is Outcome.APPLIED for a in loop.audits[audits:])
    assert await watch(loop, repair=False).check_all() == {}
    assert gauges() == [0, 0, 0]


async def test_a_suspension_undone_by_hand_is_suspended_again_after_grace(loop: Loop) -> None:
    db = await enrolled(loop, 1)
    drop(db, 1, "INF101")
    loop.feed(db)
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert await loop.roster(COURSE) == {etu(1): "suspended"}
    await loop.client.enrol_manual_enrol_users([Enrolment(100, 10, 5)])  # reactivated by hand
    found = await watch(loop, repair=True).check_all()
    assert [d.kind for d in found[COURSE].items] == [DriftKind.WRONG_STATUS]
    await loop.settle()
    assert await loop.roster(COURSE) == {etu(1): "active"}, "waits out the grace window again"
    await loop.later(GRACE.grace.total_seconds() + 1)
    assert await loop.roster(COURSE) == {etu(1): "suspended"}


class _Flapping:
    """A gateway whose first read shows a difference that is gone by the second."""

    def __init__(self, real: Any) -> None:
        self.real, self.reads = real, 0

    async def roster(self, course: str, moodle_course_id: int) -> Roster:
        roster: Roster = await self.real.roster(course, moodle_course_id)
        self.reads += 1
        if self.reads == 1:
            return Roster(roster.moodle_course_id, roster.enrolments[1:])
        return roster


async def test_a_difference_gone_by_the_second_read_is_not_drift(loop: Loop) -> None:
    await enrolled(loop, 1, 2)
    flapping = _Flapping(loop.applier.moodle)
    assert await watch(loop, repair=True, confirm_s=0.01, gateway=flapping).check_all() == {}
    assert flapping.reads == 2
    assert gauge("missing") == 0


async def test_a_course_being_applied_is_not_checked(loop: Loop) -> None:
    await enrolled(loop, 1)
    await tamper(loop)
    busy = watch(loop, repair=False)
    busy.busy = lambda course: True
    assert await busy.check_all() == {}


# -- cohorts -------------------------------------------------------------------------------------
class CohortLoop:
    """The cohort stage's logic over dict tables; its topic is a list handed straight back."""

    def __init__(self, loop: Loop, policy: PlanPolicy, shadow: bool = False) -> None:
        self.loop = loop
        self.audits: list[AuditRecord] = []
        self.shadowed: list[AuditRecord] = []
        self.flow = Cohorts(
            CourseTables({}, {}, {}, {}),
            CohortGateway(loop.client, "idnumber", create=not shadow),
            ApplierConfig(policy=cohort_policy(policy), linger_s=0, shadow=shadow),
            "IA-{cod_anu}-{cod_etp}-{cod_vrs_vet}",
            self._send,
            self._send_soon,
            self._audit,
            self._shadow,
            clock=loop.clock.mono,
            wall=loop.clock.wall,
        )
        self.flow.applier.resume()
        loop.view.also.append(self.flow.on_effects)

    async def _send(self, key: bytes, value: bytes) -> None:
        self.flow.on_record(value)

    def _send_soon(self, key: bytes, value: bytes) -> None:
        self.flow.on_record(value)

    async def _audit(self, record: AuditRecord) -> None:
        self.audits.append(record)

    async def _shadow(self, record: AuditRecord) -> None:
        self.shadowed.append(record)

    async def settle(self) -> None:
        schedule = self.flow.applier.schedule
        for _ in range(20):
            courses = schedule.take(self.loop.clock.mono(), 1000)
            if not courses:
                return
            await self.flow.applier.cycle(courses)
            for course in courses:
                schedule.release(course)

    async def members(self, emulator: RunningEmulator) -> set[int]:
        cohorts = [c for c in emulator.state.cohorts.values() if c.idnumber == COHORT]
        return set(emulator.state.cohort_members[cohorts[0].id]) if cohorts else set()


async def test_stage_facts_make_a_cohort_and_keep_its_members_in_step(
    loop: Loop, emulator: RunningEmulator
) -> None:
    cohorts = CohortLoop(loop, GRACE)
    db = Db()
    for i in (1, 2, 3):
        student(db, i)
    loop.feed(db)
    await cohorts.settle()
    assert await cohorts.members(emulator) == {100, 101, 102}
    added = [a for a in cohorts.audits if a.outcome is Outcome.APPLIED]
    assert {a.ws_function for a in added} == {"core_cohort_add_cohort_members"}
    assert {a.command.course for a in added} == {COHORT}
    assert added[0].command.facts[0].cod_etp == "L1INF"  # lineage: the stage fact and its row

    db.write(
        Table.INS_ADM_ETP,
        cod_anu="2026",
        cod_ind=2,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        num_occ_iae=1,
        eta_iae="A",
    )
    db.commit()
    loop.feed(db)
    await cohorts.settle()
    assert await cohorts.members(emulator) == {100, 101, 102}, "the grace window first"
    loop.clock.advance(GRACE.grace.total_seconds() + 1)
    await cohorts.settle()
    assert await cohorts.members(emulator) == {100, 102}
    removed = [a for a in cohorts.audits if a.command.kind.value == "unenrol"]
    assert [(a.command.user, a.ws_function) for a in removed] == [
        (etu(2), "core_cohort_delete_cohort_members")
    ]


async def test_moodles_cohort_sync_enrols_the_promotion(emulator: RunningEmulator) -> None:
    data = seed(USERS, [COURSE])
    data["tokens"][0]["capabilities"] += COHORT_CAPS
    data["cohorts"] = [{"id": 7, "idnumber": COHORT, "name": "L1 2026", "members": []}]
    data["courses"][0]["instances"] = [{"enrol": "cohort", "cohort": COHORT, "roleid": 5}]
    async with running_emulator(data) as running:
        loop = Loop(running.url, GRACE)
        try:
            cohorts = CohortLoop(loop, GRACE)
            db = Db()
            student(db, 1, elps=())
            student(db, 2, elps=())
            loop.feed(db)
            await cohorts.settle()
            # the cohort existed: found by idnumber, not created again; Moodle enrolled them
            assert [c.id for c in running.state.cohorts.values()] == [7]
            assert await loop.roster(COURSE) == {etu(1): "active", etu(2): "active"}
        finally:
            await loop.close()


async def test_a_mass_removal_from_a_cohort_is_held_and_a_command_for_an_unknown_cohort_dropped(
    loop: Loop, emulator: RunningEmulator
) -> None:
    policy = PlanPolicy(grace=timedelta(0), guard=GuardPolicy(course_max_count=3))
    cohorts = CohortLoop(loop, policy)
    db = Db()
    for i in range(1, 8):
        student(db, i)
    loop.feed(db)
    await cohorts.settle()
    for i in range(1, 6):
        db.write(
            Table.INS_ADM_ETP,
            cod_anu="2026",
            cod_ind=i,
            cod_etp="L1INF",
            cod_vrs_vet=1,
            num_occ_iae=1,
            eta_iae="A",
        )
    db.commit()
    loop.feed(db)
    await cohorts.settle()
    assert len(await cohorts.members(emulator)) == 7, "5 removals > 3: held"
    assert cohorts.flow.applier.held == {COHORT: 5}
    await asyncio.sleep(0)  # held records are written by a task of their own
    assert sum(a.outcome is Outcome.HELD for a in cohorts.audits) == 5
    cohorts.flow.on_record(_approve("IA-TYPO", loop))
    assert cohorts.flow.tables.meta("IA-TYPO") is None
    cohorts.flow.on_record(_approve(COHORT, loop))
    await cohorts.settle()
    assert len(await cohorts.members(emulator)) == 2


def _approve(cohort: str, loop: Loop) -> bytes:
    from schemas.control import ControlAction, ControlCommand

    command = ControlCommand(action=ControlAction.APPROVE, course=cohort, at=loop.clock.wall())
    return command.model_dump_json().encode()


async def test_in_shadow_mode_the_cohort_stage_changes_nothing_and_says_what_it_would_do(
    loop: Loop, emulator: RunningEmulator
) -> None:
    cohorts = CohortLoop(loop, GRACE, shadow=True)
    db = Db()
    student(db, 1)
    loop.feed(db)
    await cohorts.settle()
    assert list(emulator.state.cohorts.values()) == [], "no cohort created in shadow mode"
    assert cohorts.flow.applier.parking.courses[COHORT].reason.value == "course_not_found"


async def test_in_shadow_mode_changes_to_an_existing_cohort_are_only_recorded(
    emulator: RunningEmulator,
) -> None:
    data = seed(USERS, [COURSE])
    data["tokens"][0]["capabilities"] += COHORT_CAPS
    data["cohorts"] = [{"id": 7, "idnumber": COHORT, "name": "L1 2026", "members": []}]
    async with running_emulator(data) as running:
        loop = Loop(running.url, GRACE)
        try:
            cohorts = CohortLoop(loop, GRACE, shadow=True)
            db = Db()
            student(db, 1, elps=())
            loop.feed(db)
            await cohorts.settle()
            assert running.state.cohort_members[7] == set()
            assert [(r.outcome, r.command.user, r.ws_function) for r in cohorts.shadowed] == [
                (Outcome.DRY_RUN, etu(1), "core_cohort_add_cohort_members")
            ]
        finally:
            await loop.close()
