"""The harness itself: its real-site cleanup, run against the emulator as Moodle 4.4 on PHP 8
(where one row naming CT-NOMANUAL fails the whole call), restores the seed state."""

from __future__ import annotations

import pytest

from streams.emulator import RunningEmulator
from tests.contract.conftest import Target, assert_seed_state, cleanup

pytestmark = pytest.mark.contract


async def test_cleanup_restores_the_seed_state_on_44_php8(target: Target) -> None:
    running: RunningEmulator = target.emulator("checking the harness against a known state")
    if target.at_least("4.5"):
        pytest.skip("the no-instance HTTP 500 that broke the old cleanup is a ≤4.4 behaviour")
    users = ["ct_u1", "ct_u2", "ct_u3"]
    for course in ("CT-C1", "CT-HIDDEN", "CT-META", "CT-WELCOME", "CT-COHORT"):
        rows = [
            {"roleid": 5, "userid": target.user(u), "courseid": target.course(course)}
            for u in users
        ]
        assert await target.enrol(*rows) is None
    member = {
        "cohorttype": {"type": "idnumber", "value": "CONTRACT-CH1"},
        "usertype": {"type": "username", "value": "ct_u4"},
    }
    await target.call("core_cohort_add_cohort_members", {"members": [member]})
    link = {"metacourseid": target.course("CT-META"), "courseid": str(target.course("CT-C1"))}
    await target.call("enrol_meta_add_instances", {"instances": [link]})
    new = {"categorytype": {"type": "system", "value": ""}, "name": "N", "idnumber": "CONTRACT-NEW"}
    await target.call("core_cohort_create_cohorts", {"cohorts": [new]})
    with pytest.raises(AssertionError):
        await assert_seed_state(target)
    await cleanup(target)
    await assert_seed_state(target)
    assert running.emulator.stats.php_fatals == 0  # CT-NOMANUAL was never named
    assert not running.state.ue
    assert {c.idnumber for c in running.state.cohorts.values()} == {"CONTRACT-CH1", "CONTRACT-CH2"}
