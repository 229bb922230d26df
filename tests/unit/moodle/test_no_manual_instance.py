"""A course without a usable manual instance is rejected with its reason within one split,
never retried forever, while the other courses are applied (issue 8 point 2)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.emulator import Faults, running_emulator
from streams.moodle import (
    Enrolment,
    MoodleClient,
    MoodleSettings,
    NoManualInstance,
    Status,
    Unenrolment,
)
from tests.unit.moodle.test_client_vs_emulator import CAPABILITIES, TOKEN

GOOD, DISABLED, NOMANUAL, OTHER = 2, 4, 5, 6


def seed(version: str, php: str = "8.2") -> dict[str, Any]:
    return {
        "site": {"version": version, "php": php},
        "users": [{"id": 3, "username": "ws", "capabilities": CAPABILITIES,
                   "assignable_roles": [5]}]
        + [{"id": 100 + i, "username": f"u{i}"} for i in range(40)],
        "courses": [
            {"id": GOOD, "shortname": "GOOD"},
            {"id": DISABLED, "shortname": "DISABLED",
             "instances": [{"enrol": "manual", "status": 1}]},
            {"id": NOMANUAL, "shortname": "NOMANUAL", "instances": [{"enrol": "cohort"}]},
            {"id": OTHER, "shortname": "OTHER"},
        ],
        "tokens": [{"token": TOKEN, "userid": 3}],
    }  # fmt: skip


def client(url: str, **kw: Any) -> MoodleClient:
    settings = MoodleSettings.model_validate(
        {"url": url, "token": TOKEN, "rate_per_s": 1000, "rate_burst": 100, "max_batch_rows": 100,
         "max_attempts": 50, "backoff_base_s": 0.01, "backoff_cap_s": 0.02, **kw}
    )  # fmt: skip
    return MoodleClient(settings)


def rows() -> list[Enrolment]:
    """Ten rows per course, interleaved, in one batch."""
    courses = [GOOD, DISABLED, NOMANUAL, OTHER]
    return [Enrolment(userid=100 + i, courseid=courses[i % 4], roleid=5) for i in range(40)]


@pytest.mark.parametrize(("version", "php"), [("4.4", "8.2"), ("4.4", "7.4"), ("4.5", "8.2")])
async def test_course_without_usable_manual_instance_is_rejected_in_one_split(
    version: str, php: str
) -> None:
    async with running_emulator(seed(version, php)) as emu, client(emu.url) as moodle:
        outcomes = await moodle.enrol_manual_enrol_users(rows())
        stats = emu.emulator.stats
        applied = {o.item.courseid for o in outcomes if o.status is Status.APPLIED}
        rejected = [o for o in outcomes if o.status is Status.REJECTED]
        assert applied == {GOOD, OTHER}
        assert {o.item.courseid for o in rejected} == {DISABLED, NOMANUAL}
        assert len(rejected) == 20 and not [o for o in outcomes if o.status is Status.DEFERRED]
        for outcome in rejected:
            assert isinstance(outcome.error, NoManualInstance)
            assert outcome.error.courseid == outcome.item.courseid
        assert emu.state.course_users[GOOD].keys() == {o.item.userid for o in outcomes
                                                       if o.item.courseid == GOOD}  # fmt: skip
        # one batch, then one sub-batch per course (4), plus, on PHP 8, one course lookup per
        # failing course: bounded, however many rows, and never retried forever.
        calls = stats.by_function["enrol_manual_enrol_users"] + sum(
            n for k, n in stats.by_outcome.items() if k in ("php_fatal", "wsnoinstance")
        )
        assert stats.calls <= 1 + 4 + 2, stats.as_dict(1.0)
        assert calls >= 3  # the first batch failed; the two good courses succeeded
        if version == "4.4" and php == "8.2":
            assert stats.php_fatals == 3  # whole batch, then the two bad courses alone


async def test_unenrol_on_a_course_without_manual_instance_php8() -> None:
    async with running_emulator(seed("4.4")) as emu, client(emu.url) as moodle:
        await moodle.enrol_manual_enrol_users([Enrolment(100, GOOD, 5)])
        outcomes = await moodle.enrol_manual_unenrol_users(
            [Unenrolment(100, GOOD), Unenrolment(101, NOMANUAL), Unenrolment(102, DISABLED)]
        )
    by_course = {o.item.courseid: o for o in outcomes}
    assert by_course[GOOD].status is Status.APPLIED
    assert by_course[DISABLED].status is Status.APPLIED  # a disabled instance still unenrols
    assert by_course[NOMANUAL].status is Status.REJECTED
    assert isinstance(by_course[NOMANUAL].error, NoManualInstance)
    assert NoManualInstance.REASON in str(by_course[NOMANUAL].error)
    assert not emu.state.is_enrolled(GOOD, 100)


async def test_an_unexplained_empty_500_is_deferred_not_rejected() -> None:
    """A fatal error on a course that *has* a usable manual instance is not a no-instance:
    the rows stay deferred (retry later), nothing is rejected."""
    async with running_emulator(seed("4.4")) as emu, client(emu.url, max_attempts=2) as moodle:
        emu.emulator.injector.configure(Faults(error_rate=1.0, error_kind="phpfatal"))
        outcomes = await moodle.enrol_manual_enrol_users(
            [Enrolment(100, GOOD, 5), Enrolment(101, GOOD, 5)]
        )
        lookups = emu.emulator.stats.by_outcome["phpfatal"]
    assert [o.status for o in outcomes] == [Status.DEFERRED, Status.DEFERRED]
    assert all(not isinstance(o.error, NoManualInstance) for o in outcomes)
    assert lookups <= 2 + 2 * 2 + 1  # batch, halves (retried twice each), the course lookup


async def test_has_usable_manual_instance() -> None:
    async with running_emulator(seed("4.4")) as emu, client(emu.url) as moodle:
        assert await moodle.has_usable_manual_instance(GOOD) is True
        assert await moodle.has_usable_manual_instance(DISABLED) is False
        assert await moodle.has_usable_manual_instance(NOMANUAL) is False
        assert await moodle.has_usable_manual_instance(999) is None
        assert await moodle.core_enrol_get_course_enrolment_methods(GOOD) == []
