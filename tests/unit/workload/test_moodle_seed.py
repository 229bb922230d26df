"""The emulator seed matches the generated year, loads, and lets the reconciler's token work."""

from __future__ import annotations

import json
from pathlib import Path

from streams.emulator import running_emulator
from streams.moodle import Enrolment, MoodleClient, MoodleSettings, Status
from streams.workload.events import story
from streams.workload.generator import Part, generate_year
from streams.workload.moodle_seed import emulator_seed, user_spec
from streams.workload.oracle import expected_from_rows

TOKEN = "f" * 32
EXAMPLE = Path("streams/emulator/seed_example.json")


def test_seed_has_every_student_and_course_but_the_two_that_come_later() -> None:
    year = generate_year(200, seed=6)
    seed = emulator_seed(year, TOKEN)
    users = {u["idnumber"] for u in seed["users"] if u.get("idnumber")}
    courses = {c["idnumber"] for c in seed["courses"]}
    tables = year.tables()
    expected = expected_from_rows(
        tables.values("individu"), tables.values("ins_adm_etp"), tables.values("ind_contrat_elp")
    )
    missing = str(year.student(Part.NOT_IN_MOODLE).cod_etu)
    late = str(year.student(Part.LATE_NUMBER).cod_etu)
    assert {c for c, _ in expected} <= courses
    assert {u for _, u in expected} - users == {missing}
    assert late in users  # the account exists before APOGÉE issues the number
    assert f"{year.cod_anu}-UEL301" not in courses
    assert len({c["id"] for c in seed["courses"]}) == len(seed["courses"])
    assert len({u["id"] for u in seed["users"]}) == len(seed["users"])


def test_service_account_is_the_example_seeds() -> None:
    example = json.loads(EXAMPLE.read_text())
    seed = emulator_seed(generate_year(40, seed=1), TOKEN)
    (token,) = seed["tokens"]
    mine = {**token, "token": "x"}
    theirs = {**next(t for t in example["tokens"] if t["name"] == "reconciler"), "token": "x"}
    assert mine == theirs
    service = next(u for u in seed["users"] if u["id"] == token["userid"])
    assert service == next(u for u in example["users"] if u["id"] == token["userid"])


async def test_reconciler_token_finds_users_and_courses_and_enrols() -> None:
    year = generate_year(40, seed=1)
    seed = emulator_seed(year, TOKEN)
    event = next(e for e in story(year, year.tables()) if e.name == "late_student_number")
    course, user = sorted(event.active)[0]
    async with running_emulator(seed) as emu:
        settings = MoodleSettings(url=emu.url, token=TOKEN, rate_per_s=1000.0)
        async with MoodleClient(settings) as moodle:
            (found,) = await moodle.core_user_get_users_by_field("idnumber", [user])
            (hit,) = await moodle.core_course_get_courses_by_field("idnumber", course)
            (outcome,) = await moodle.enrol_manual_enrol_users(
                [Enrolment(userid=found.id, courseid=hit.id, roleid=5)]
            )
            assert outcome.status is Status.APPLIED
            active = await moodle.core_enrol_get_enrolled_users(hit.id, onlyactive=True)
            assert [u.idnumber for u in active] == [user]
            missing = year.student(Part.NOT_IN_MOODLE)
            assert (
                await moodle.core_user_get_users_by_field("idnumber", [str(missing.cod_etu)]) == []
            )
        assert user_spec(year, missing)["idnumber"] == str(missing.cod_etu)
