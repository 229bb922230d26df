"""The real client against the in-process emulator with faults on: nothing lost, bad items
isolated, limits respected (counted at the emulator)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streams.emulator import Faults, Latency, RateLimit, RunningEmulator, running_emulator
from streams.moodle import Enrolment, MoodleClient, MoodleSettings, Status, Unenrolment
from streams.moodle.errors import InvalidUser, RoleNotAssignable

TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # 32 letters and digits, as Moodle makes them
N_USERS = 400
COURSE = 2
CAPABILITIES = [
    "webservice/rest:use", "enrol/manual:enrol", "enrol/manual:unenrol", "moodle/role:assign",
    "moodle/course:view", "moodle/course:viewparticipants", "moodle/course:enrolreview",
    "moodle/user:viewalldetails",
]  # fmt: skip


def seed(version: str = "5.2", max_input_vars: int = 1000) -> dict[str, Any]:
    return {
        "site": {"version": version, "max_input_vars": max_input_vars},
        "users": [{"id": 3, "username": "ws"}]
        + [{"id": 100 + i, "username": f"u{i}", "idnumber": f"S{i:05d}"} for i in range(N_USERS)],
        "courses": [{"id": COURSE, "shortname": "C"}, {"id": 3, "shortname": "D"}],
        "tokens": [
            {
                # Not a site admin ("*"): admins pass through maintenance mode, as in Moodle.
                "token": TOKEN,
                "userid": 3,
                "capabilities": CAPABILITIES,
                "assignable_roles": [5],
            }
        ],
    }


def client_for(running: RunningEmulator, **kw: Any) -> MoodleClient:
    settings = MoodleSettings.model_validate(
        {"url": running.url, "token": TOKEN, "backoff_base_s": 0.01, "backoff_cap_s": 0.05,
         "rate_per_s": 1000, "rate_burst": 100, **kw}
    )  # fmt: skip
    return MoodleClient(settings)


def enrolled(running: RunningEmulator, courseid: int = COURSE) -> set[int]:
    return set(running.state.course_users.get(courseid, {}))


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with running_emulator(seed()) as running:
        yield running


async def test_nothing_lost_under_errors_latency_and_lost_answers(
    emulator: RunningEmulator,
) -> None:
    emulator.emulator.injector.configure(
        Faults(
            error_rate=0.25,
            error_kind="http503",
            timeout_rate=0.1,
            timeout_s=0.3,
            when="after",  # the call is applied, its answer lost: retries must be harmless
            latency=Latency(distribution="uniform", min_ms=1, max_ms=5),
            seed=7,
        )
    )
    rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(N_USERS)]
    async with client_for(emulator, timeout_s=0.2, max_attempts=12, max_batch_rows=50) as moodle:
        outcomes = await moodle.enrol_manual_enrol_users(rows)
    assert all(o.status is Status.APPLIED for o in outcomes)
    assert enrolled(emulator) == {r.userid for r in rows}
    outcomes_seen = emulator.emulator.stats.by_outcome
    assert outcomes_seen["http503"] > 0 and outcomes_seen["timeout"] > 0
    state = emulator.state
    assert all(len(state.ra[(COURSE, r.userid)]) == 1 for r in rows)  # no duplicate roles


async def test_bad_items_are_isolated_and_the_rest_applied(emulator: RunningEmulator) -> None:
    rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(100)]
    rows[17] = Enrolment(userid=999_999, courseid=COURSE, roleid=5)  # no such user
    rows[60] = Enrolment(userid=160, courseid=COURSE, roleid=42)  # no such role
    async with client_for(emulator) as moodle:
        outcomes = await moodle.enrol_manual_enrol_users(rows)
    rejected = {i: o for i, o in enumerate(outcomes) if o.status is Status.REJECTED}
    assert set(rejected) == {17, 60}
    assert isinstance(rejected[17].error, InvalidUser)
    assert isinstance(rejected[60].error, RoleNotAssignable)
    good = {r.userid for i, r in enumerate(rows) if i not in rejected}
    assert enrolled(emulator) == good
    # bisection: far fewer calls than one per row
    assert emulator.emulator.stats.by_function["enrol_manual_enrol_users"] < 30


async def test_concurrency_and_rate_limits_are_respected_at_the_server(
    emulator: RunningEmulator,
) -> None:
    emulator.emulator.injector.configure(Faults(latency=Latency(distribution="fixed", mean_ms=20)))
    async with client_for(
        emulator, max_concurrency=3, adaptive_concurrency=False, rate_per_s=40, rate_burst=4
    ) as moodle:
        await asyncio.gather(*(moodle.call("core_webservice_get_site_info") for _ in range(40)))
    stats = emulator.emulator.stats
    assert stats.calls == 40
    assert stats.max_in_flight == 3
    assert stats.max_in_window(0.5) <= 4 + 40 * 0.5 + 1  # burst + rate · window


async def test_batches_stay_within_max_input_vars() -> None:
    async with running_emulator(seed(max_input_vars=250)) as running:
        rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(N_USERS)]
        async with client_for(running, max_input_vars=250, max_batch_rows=1000) as moodle:
            outcomes = await moodle.enrol_manual_enrol_users(rows)
        stats = running.emulator.stats
        assert all(o.ok for o in outcomes)
        assert stats.truncated_calls == 0 and stats.max_vars_seen <= 250
        assert enrolled(running) == {r.userid for r in rows}


async def test_a_client_trusting_a_larger_limit_loses_rows_silently() -> None:
    """Why max_input_vars must be configured: the emulator, like PHP, drops the excess."""
    async with running_emulator(seed(max_input_vars=250)) as running:
        rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(100)]
        async with client_for(running, max_input_vars=5000, max_batch_rows=100) as moodle:
            outcomes = await moodle.enrol_manual_enrol_users(rows)
        assert all(o.ok for o in outcomes)  # Moodle said null…
        assert len(enrolled(running)) < 100  # …but rows were dropped
        assert running.emulator.stats.truncated_calls >= 1


async def test_maintenance_then_recovery_loses_nothing(emulator: RunningEmulator) -> None:
    emulator.emulator.injector.configure(Faults(maintenance=True))
    rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(10)]
    async with client_for(emulator, max_attempts=2) as moodle:
        deferred = await moodle.enrol_manual_enrol_users(rows)
        assert {o.status for o in deferred} == {Status.DEFERRED}
        assert enrolled(emulator) == set()
        emulator.emulator.injector.configure(Faults())
        retried = await moodle.enrol_manual_enrol_users([o.item for o in deferred])
    assert {o.status for o in retried} == {Status.APPLIED}
    assert enrolled(emulator) == {r.userid for r in rows}


async def test_rate_limited_by_a_proxy_then_through(emulator: RunningEmulator) -> None:
    emulator.emulator.injector.configure(
        Faults(rate_limit=RateLimit(rps=50, burst=2, retry_after_s=0))
    )
    rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(60)]
    async with client_for(emulator, max_batch_rows=5, max_attempts=20) as moodle:
        outcomes = await moodle.enrol_manual_enrol_users(rows)
    assert all(o.ok for o in outcomes)
    assert emulator.emulator.stats.by_outcome["rate_limited"] > 0
    assert enrolled(emulator) == {r.userid for r in rows}


@pytest.mark.parametrize("version", ["5.1", "5.2"])
async def test_unenrol_adapts_to_the_site_version(version: str) -> None:
    async with running_emulator(seed(version=version)) as running:
        async with client_for(running) as moodle:
            await moodle.enrol_manual_enrol_users(
                [Enrolment(userid=100, courseid=COURSE, roleid=5)]
            )
            outcomes = await moodle.enrol_manual_unenrol_users([Unenrolment(100, COURSE, roleid=5)])
        assert [o.status for o in outcomes] == [Status.APPLIED]
        assert enrolled(running) == set()


async def test_reads_and_lookups_round_trip(emulator: RunningEmulator) -> None:
    async with client_for(emulator, page_size=7) as moodle:
        rows = [
            Enrolment(userid=100 + i, courseid=COURSE, roleid=5, suspend=i % 2 == 1)
            for i in range(20)
        ]
        await moodle.enrol_manual_enrol_users(rows)
        active = await moodle.core_enrol_get_enrolled_users(COURSE, onlyactive=True)
        suspended = await moodle.core_enrol_get_enrolled_users(COURSE, onlysuspended=True)
        users = await moodle.core_user_get_users_by_field(
            "idnumber", [f"S{i:05d}" for i in range(300)]
        )
        courses = await moodle.core_course_get_courses_by_field("shortname", "C")
    assert [u.id for u in active] == [100 + i for i in range(0, 20, 2)]
    assert [u.id for u in suspended] == [100 + i for i in range(1, 20, 2)]
    assert [u.id for u in users] == [100 + i for i in range(300)]
    assert [c.id for c in courses] == [COURSE]
