"""A timed-out call is not re-sent while its first copy may still run; the client methods the
applier needs, round-tripped through the emulator."""

from __future__ import annotations

import pytest

from streams.emulator import Faults, running_emulator
from streams.moodle import (
    Enrolment,
    MoodleClient,
    MoodleSettings,
    RoleAssignment,
    Status,
)
from streams.moodle.errors import RequestTimeout
from tests.unit.moodle.test_client_vs_emulator import COURSE, TOKEN, seed


async def test_timed_out_batch_is_resent_only_after_the_hold() -> None:
    """The first copy hangs 0.4 s on the site after applying; the client gives up at 0.1 s and
    holds the batch for 0.6 s: the second copy reaches the site after the first finished."""
    async with running_emulator(seed()) as emu:
        emu.emulator.injector.configure(
            Faults(when="after", timeout_rate=1.0, timeout_s=0.4, seed=1)
        )
        settings = MoodleSettings.model_validate(
            {"url": emu.url, "token": TOKEN, "timeout_s": 0.1, "timeout_hold_s": 0.6,
             "max_attempts": 2, "backoff_base_s": 0.01, "rate_per_s": 1000}
        )  # fmt: skip
        async with MoodleClient(settings) as moodle:
            with pytest.raises(RequestTimeout):
                await moodle.call(
                    "enrol_manual_enrol_users",
                    {"enrolments": [{"roleid": 5, "userid": 100, "courseid": COURSE}]},
                )
            starts = list(emu.emulator.stats.starts)
            assert len(starts) == 2
            assert starts[1] - starts[0] >= 0.6  # not before the hold
            assert moodle.concurrency().in_flight == 0  # the held slots are free again
        assert emu.state.is_enrolled(COURSE, 100)


async def test_role_change_users_courses_cohorts_groups() -> None:
    data = seed()
    data["courses"][0]["groups"] = [{"id": 7, "name": "TD1"}]
    data["cohorts"] = [{"id": 1, "idnumber": "CH", "name": "Cohort", "members": [100, 101]}]
    extra = ["moodle/course:managegroups", "moodle/cohort:view"]
    data["users"][0]["capabilities"] = [*data["tokens"][0].pop("capabilities"), *extra]
    data["users"][0]["assignable_roles"] = [3, 5]
    data["tokens"][0].pop("assignable_roles")
    async with running_emulator(data) as emu:
        settings = MoodleSettings.model_validate({"url": emu.url, "token": TOKEN})
        async with MoodleClient(settings) as moodle:
            await moodle.enrol_manual_enrol_users(
                [Enrolment(100, COURSE, 5), Enrolment(100, COURSE, 3)]  # new role beside the old
            )
            outcomes = await moodle.core_role_unassign_roles(
                [RoleAssignment.in_course(5, 100, COURSE), RoleAssignment.in_course(5, 100, 999)]
            )
            assert [o.status for o in outcomes] == [Status.APPLIED, Status.REJECTED]
            [user] = await moodle.core_enrol_get_enrolled_users(COURSE)
            assert [r.shortname for r in user.roles] == ["editingteacher"]
            [course] = await moodle.core_enrol_get_users_courses(100)
            assert (course.id, course.shortname) == (COURSE, "C")
            [cohort] = await moodle.core_cohort_get_cohorts()
            assert cohort.idnumber == "CH"
            [members] = await moodle.core_cohort_get_cohort_members([1])
            assert members.userids == [100, 101]
            [group] = await moodle.core_group_get_course_groups(COURSE)
            assert (group.id, group.name) == (7, "TD1")
            [gm] = await moodle.core_group_get_group_members([7])
            assert gm.userids == []
