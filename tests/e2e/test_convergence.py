"""APOGÉE changes in the real PostgreSQL reach the Moodle emulator through the real stack.

One emulator and one worker process serve the module; each test owns its students and
elements. Moodle is read through its web services and compared with what SQL says.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.moodle import Enrolment
from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, eventually, seed, wait_until
from tests.support.kafka import Record, read_all, read_until

pytestmark = pytest.mark.e2e

ELEMENTS = ["A", "B", "C", "D", "D2", "P", "T", "M", "M2", "Z", "NOMAN"]
SEEDED_USERS = 100
TEACHER = 90


@pytest.fixture(scope="module")
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with e2e_run(services, tmp_path_factory.mktemp("e2e"), size=300) as run:
        data = seed(run.slice, ELEMENTS, SEEDED_USERS)
        noman = next(c for c in data["courses"] if c["idnumber"] == run.slice.course("NOMAN"))
        noman["instances"] = []
        run.start_emulator(data)
        asyncio.run(_enrol_teacher_by_hand(run))  # before the reconciler ever starts
        run.start_worker()
        yield run


def _course_id(run: Run, element: str) -> int:
    found = run.emulator_get("/_emulator/state")
    return int(
        next(c["id"] for c in found["courses"] if c["idnumber"] == run.slice.course(element))
    )


def _enrolment(run: Run, element: str, i: int) -> dict[str, Any]:
    rows = run.emulator_get(
        f"/_emulator/enrolments?courseid={_course_id(run, element)}&userid={1000 + i}"
    )
    assert len(rows) == 1, rows
    return dict(rows[0])


def _audit(run: Run) -> list[Record]:
    """Every audit record of this run so far."""
    return read_all(run.services.bootstrap_servers, f"{run.app_id}.audit")


async def _enrol_teacher_by_hand(run: Run) -> None:
    async with run.client() as client:
        await client.enrol_manual_enrol_users([Enrolment(1000 + TEACHER, _course_id(run, "T"), 3)])


async def test_contract_row_enrols_deletion_suspends_after_grace_keeping_grades(run: Run) -> None:
    run.student(0, "A")
    await eventually(lambda: _is(run, "A", {run.slice.etu(0): "active"}), 60, "enrolled")
    run.emulator_post(
        "/_emulator/grades", {"courseid": _course_id(run, "A"), "userid": 1000, "grade": 15.5}
    )
    run.sql(run.uncontract(0, "A"))
    await eventually(lambda: _is(run, "A", {run.slice.etu(0): "suspended"}), 60, "suspended")
    row = _enrolment(run, "A", 0)
    assert row["grade"] == 15.5 and row["status"] == 1
    run.sql(run.contract(0, "A"))
    await eventually(lambda: _is(run, "A", {run.slice.etu(0): "active"}), 60, "reactivated")
    row = _enrolment(run, "A", 0)
    assert [r["roleid"] for r in row["roles"]] == [5], "one student role, not two"
    assert row["grade"] == 15.5
    assert await run.matches_sql(["A"]) == ""


async def test_cancelled_administrative_enrolment_suspends_that_stage(run: Run) -> None:
    run.student(1, "B", "C")
    run.student(2, "B")
    both = {run.slice.etu(1): "active", run.slice.etu(2): "active"}
    await eventually(lambda: _is(run, "B", both), 60, "enrolled")
    run.sql(
        ("UPDATE apogee.ins_adm_etp SET eta_iae = 'A' WHERE cod_ind = %s", (run.slice.cod_ind(1),))
    )
    expected = {run.slice.etu(1): "suspended", run.slice.etu(2): "active"}
    await eventually(lambda: _is(run, "B", expected), 60, "B suspended for the cancelled one")
    await eventually(lambda: _is(run, "C", {run.slice.etu(1): "suspended"}), 60, "C suspended")
    assert await run.matches_sql(["B", "C"]) == ""


async def test_delete_and_reinsert_in_one_transaction_does_not_flap(run: Run) -> None:
    run.student(3, "D")
    await eventually(lambda: _is(run, "D", {run.slice.etu(3): "active"}), 60, "enrolled")
    before = _enrolment(run, "D", 3)
    run.sql(run.uncontract(3, "D"), run.contract(3, "D"))
    # A later change of another student, applied after the grace window: by then a flap
    # would have happened.
    run.student(4, "D2")
    await eventually(lambda: _is(run, "D2", {run.slice.etu(4): "active"}), 60, "marker applied")
    wait_until(lambda: run.status()["pending_courses"] == 0, 30, "worker idle")
    await eventually(lambda: _grace_passed(run), 30, "grace window passed")
    after = _enrolment(run, "D", 3)
    assert after["status"] == 0 and after["timemodified"] == before["timemodified"]
    kinds = [
        r.value["command"]["kind"]
        for r in _audit(run)
        if r.value["command"]["user"] == run.slice.etu(3)
    ]
    assert kinds == ["enrol"]


async def _grace_passed(run: Run) -> bool:
    """The grace window under test (RECONCILER_GRACE_S=3) has run out, with a margin: what
    is asserted next is that something did NOT happen, so there is no condition to poll."""
    await asyncio.sleep(4)
    return True


async def test_missing_user_is_parked_then_enrolled_when_created(run: Run) -> None:
    late = 150  # beyond the seeded users
    run.student(late, "P")
    run.student(5, "P")
    await eventually(lambda: _is(run, "P", {run.slice.etu(5): "active"}), 60, "others go on")
    parked = wait_until(
        lambda: [p for p in run.status()["parked_examples"] if p["user"] == run.slice.etu(late)],
        30,
        "parked",
    )
    assert parked[0]["reason"] == "user_not_found"
    run.emulator_post(
        "/_emulator/users", {"id": 5000, "username": "late", "idnumber": run.slice.etu(late)}
    )
    both = {run.slice.etu(5): "active", run.slice.etu(late): "active"}
    await eventually(lambda: _is(run, "P", both), 60, "enrolled once the user exists")


async def test_missing_course_and_course_without_manual_instance_are_parked(run: Run) -> None:
    run.student(6, "A", "NOMAN", "GHOST")  # GHOST is not in Moodle at all
    await eventually(lambda: _has(run, "A", run.slice.etu(6), "active"), 60, "others go on")
    parked = wait_until(lambda: _parked_courses(run, {"NOMAN", "GHOST"}), 60, "both parked")
    assert parked == {
        run.slice.course("GHOST"): "course_not_found",
        run.slice.course("NOMAN"): "no_manual_instance",
    }
    ghost = run.slice.course("GHOST")
    run.emulator_post(
        "/_emulator/courses", {"idnumber": ghost, "shortname": ghost, "fullname": "Created later"}
    )
    await eventually(
        lambda: _is(run, "GHOST", {run.slice.etu(6): "active"}),
        60,
        "enrolled once the course exists",
    )
    assert run.slice.course("NOMAN") in run.status()["parked_courses"]


def _parked_courses(run: Run, elements: set[str]) -> dict[str, str] | None:
    courses = run.status()["parked_courses"]
    wanted = {run.slice.course(e) for e in elements}
    found = {c: p["reason"] for c, p in courses.items() if c in wanted}
    return found if set(found) == wanted else None


async def test_a_teachers_own_enrolment_is_never_touched(run: Run) -> None:
    # The teacher (user 90) was enrolled by hand in T before the worker started (fixture).
    run.student(TEACHER, "T")  # APOGÉE also lists them as a student
    run.student(7, "T")
    expected = {run.slice.etu(TEACHER): "active", run.slice.etu(7): "active"}
    await eventually(lambda: _is(run, "T", expected), 60, "student enrolled")
    run.sql(run.uncontract(TEACHER, "T"))
    run.student(8, "T")
    expected[run.slice.etu(8)] = "active"
    await eventually(lambda: _is(run, "T", expected), 60, "later change applied")
    await _grace_passed(run)
    assert await run.roster("T") == expected
    row = _enrolment(run, "T", TEACHER)
    assert [r["roleid"] for r in row["roles"]] == [3] and row["status"] == 0
    touched = {
        r.value["command"]["user"]
        for r in _audit(run)
        if r.value["command"]["course"] == run.slice.course("T")
    }
    assert touched == {run.slice.etu(7), run.slice.etu(8)}


async def test_mass_deletion_is_held_until_approved_while_others_converge(run: Run) -> None:
    members = range(20, 60)
    for i in members:
        run.student(i, "M")
    await eventually(lambda: _count(run, "M", "active", 40), 90, "40 enrolled")
    run.sql(*(run.uncontract(i, "M") for i in range(20, 35)))  # 15 of 40 = 37 %
    held = wait_until(lambda: run.status()["held"].get(run.slice.course("M")), 60, "held")
    assert held == 15
    run.student(60, "M2")  # another course still converges meanwhile
    await eventually(lambda: _is(run, "M2", {run.slice.etu(60): "active"}), 60, "M2 converges")
    assert await _count(run, "M", "active", 40), "nothing suspended while held"

    approve = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streams.cli", "approve", run.slice.course("M"), "--by", "e2e"],
        env={**os.environ, **run.worker_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert approve.returncode == 0, approve.stderr
    await eventually(lambda: _count(run, "M", "suspended", 15), 60, "approved removals applied")
    assert await _count(run, "M", "active", 25)
    assert await run.matches_sql(["M", "M2"]) == ""


async def test_bad_cdc_records_are_dead_lettered_and_the_rest_converges(run: Run) -> None:
    topic = "apogee.apogee.ind_contrat_elp"
    producer = Producer(
        {"bootstrap.servers": run.services.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    key = json.dumps({"cod_ind": run.slice.cod_ind(9)}).encode()
    bad = [
        b"{not json",
        b'{"op": "c", "after": {"cod_anu": "2026"}, "source": {"lsn": 1}}',
        b'{"op": "x", "after": {}, "source": {"lsn": 1}}',
        b"\xff\xfe",
    ]
    for value in bad:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0
    run.student(9, "Z")
    await eventually(lambda: _is(run, "Z", {run.slice.etu(9): "active"}), 60, "converged")
    dead = read_until(
        run.services.bootstrap_servers,
        f"{run.app_id}.deadletter",
        lambda rs: len(rs) >= len(bad),
        timeout_s=30,
    )
    reasons = [r.value["reason"] for r in dead if r.value["topic"] == topic]
    assert reasons == [
        "malformed_json",
        "invalid_envelope",
        "unsupported_operation",
        "malformed_json",
    ]
    assert dead[0].value["value"] == "{not json"


async def _is(run: Run, element: str, expected: dict[str, str]) -> bool:
    return await run.roster(element) == expected


async def _has(run: Run, element: str, user: str, status: str) -> bool:
    return (await run.roster(element)).get(user) == status


async def _count(run: Run, element: str, status: str, n: int) -> bool:
    return sum(s == status for s in (await run.roster(element)).values()) == n
