"""The emulator's cost model (calibrated on §11), its PHP workers, and the controls added for
issue 8: POST /_emulator/courses, /_emulator/server, Database-method enrolments in the seed."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from streams.emulator import PROFILES, CostProfile, FunctionCost, running_emulator
from streams.emulator.cli import command

EXAMPLE = Path(__file__).parents[3] / "streams" / "emulator" / "seed_example.json"
TOKEN = "0123456789abcdef0123456789abcdef"

# (function, changed rows, unchanged rows, §11 median in ms)
FIGURES = [
    ("enrol_manual_enrol_users", 1, 0, 32.9),
    ("enrol_manual_enrol_users", 0, 1, 28.0),
    ("enrol_manual_unenrol_users", 1, 0, 31.1),
    ("enrol_manual_enrol_users", 100, 0, 440.7),
    ("enrol_manual_enrol_users", 0, 100, 214.4),
    ("enrol_manual_unenrol_users", 100, 0, 471.0),
]


@pytest.mark.parametrize(("function", "changed", "unchanged", "ms"), FIGURES)
def test_calibrated_profile_reproduces_the_section_11_medians(
    function: str, changed: int, unchanged: int, ms: float
) -> None:
    exact = PROFILES["calibrated"].model_copy(update={"jitter_sigma": 0.0})
    cost = exact.service_s(function, changed, unchanged, 0, random.Random(0))
    assert cost * 1000 == pytest.approx(ms, abs=0.05)


def test_jitter_keeps_the_median() -> None:
    rng = random.Random(3)
    profile = PROFILES["calibrated"]
    samples = sorted(
        profile.service_s("enrol_manual_enrol_users", 100, 0, 0, rng) for _ in range(2001)
    )
    assert samples[1000] * 1000 == pytest.approx(440.7, rel=0.02)
    assert 1.03 < samples[1800] / samples[1000] < 1.15  # p90 a few per cent above, as seen


def test_instant_profile_costs_nothing() -> None:
    assert (
        PROFILES["instant"].service_s("enrol_manual_enrol_users", 100, 0, 0, random.Random()) == 0
    )


async def _enrol(http: httpx.AsyncClient, endpoint: str, userid: int, courseid: int = 2) -> object:
    response = await http.post(
        endpoint,
        params={"wsfunction": "enrol_manual_enrol_users", "moodlewsrestformat": "json"},
        data={"wstoken": TOKEN, "enrolments[0][roleid]": "5",
              "enrolments[0][userid]": str(userid), "enrolments[0][courseid]": str(courseid)},
    )  # fmt: skip
    return response.json()


async def test_calls_beyond_the_workers_wait_for_one() -> None:
    slow = CostProfile(name="slow", default=FunctionCost(per_call_ms=150.0))
    async with running_emulator(EXAMPLE, profile=slow, workers=1) as emu:
        async with httpx.AsyncClient() as http:
            results = await asyncio.gather(*(_enrol(http, emu.endpoint, u) for u in (10, 11, 12)))
        workers, stats = emu.emulator.workers, emu.emulator.stats
        assert results == [None, None, None]
        assert workers.max_queued == 2 and stats.max_in_flight == 3
        assert stats.busy_s >= 3 * 0.15  # each held the single worker for its service time


async def test_server_settings_and_course_creation_over_http() -> None:
    async with running_emulator(EXAMPLE) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        assert (await http.get("/_emulator/server")).json() == {
            "profile": "instant",
            "workers": None,
        }
        changed = await http.post("/_emulator/server", json={"profile": "calibrated", "workers": 4})
        assert changed.json() == {"profile": "calibrated", "workers": 4}
        assert (await http.post("/_emulator/server", json={"profile": "nope"})).status_code == 400
        await http.post("/_emulator/server", json={"profile": "instant", "workers": None})
        created = (
            await http.post("/_emulator/courses", json={"shortname": "NEW", "idnumber": "N-1"})
        ).json()
        assert [i["enrol"] for i in created["instances"]] == ["manual"]
        assert await _enrol(http, emu.endpoint, 10, created["id"]) is None
        bare = await http.post(
            "/_emulator/courses", json={"id": 90, "shortname": "BARE", "instances": []}
        )
        assert bare.json()["id"] == 90
        body = await _enrol(http, emu.endpoint, 10, 90)
        assert body == {
            "exception": "core\\exception\\moodle_exception",
            "errorcode": "wsnoinstance",
            "message": "Manual enrolment plugin instance doesn't exist or is disabled for the "
            "course (id = 90)",
        }
        assert (
            await http.post("/_emulator/courses", json={"id": 90, "shortname": "X"})
        ).status_code == 400


async def test_database_enrolments_in_the_seed_are_reported_like_any_other() -> None:
    seed = {
        "users": [
            {"id": 3, "username": "ws", "capabilities": [
                "webservice/rest:use", "moodle/course:view", "moodle/course:viewparticipants",
                "moodle/course:enrolreview"]},
            {"id": 10, "username": "a"}, {"id": 11, "username": "b"},
        ],
        "courses": [{"id": 2, "shortname": "DB", "instances": [
            {"enrol": "manual"},
            {"enrol": "database", "roleid": 5, "enrolments": [10, {"userid": 11, "status": 1}]},
        ]}],
        "tokens": [{"token": TOKEN, "userid": 3}],
    }  # fmt: skip
    async with running_emulator(seed) as emu, httpx.AsyncClient() as http:
        response = await http.post(
            emu.endpoint,
            params={"wsfunction": "core_enrol_get_enrolled_users", "moodlewsrestformat": "json"},
            data={"wstoken": TOKEN, "courseid": "2", "options[0][name]": "onlyactive",
                  "options[0][value]": "1"},
        )  # fmt: skip
        assert [u["id"] for u in response.json()] == [10]
        assert [r["shortname"] for r in response.json()[0]["roles"]] == ["student"]
        rows = emu.state.snapshot()["role_assignments"]
        assert {(r["userid"], r["component"]) for r in rows} == {
            (10, "enrol_database"), (11, "enrol_database")
        }  # fmt: skip


def test_capabilities_of_two_tokens_of_one_user_must_agree() -> None:
    from streams.emulator.state import load_seed

    seed = {
        "users": [{"id": 3, "username": "ws"}],
        "tokens": [
            {"token": "a" * 32, "userid": 3, "capabilities": ["webservice/rest:use"]},
            {"token": "b" * 32, "userid": 3, "capabilities": ["moodle/course:view"]},
        ],
    }
    with pytest.raises(ValueError, match="belong to user"):
        load_seed(seed)


def test_cli_offers_profile_workers_and_php() -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for flag in ("--profile", "--workers", "--php", "calibrated", "phpfatal"):
        assert flag in result.output
