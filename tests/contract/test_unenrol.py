"""enrol_manual_unenrol_users (checklist 5) and what the last unenrolment destroys (checklist 6)."""

from __future__ import annotations

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract

INVALID = "Invalid parameter value detected"


def _enrol_row(
    target: Target, user: str = "ct_u1", course: str = "CT-C1", role: str = "student"
) -> dict[str, int]:
    return {
        "roleid": target.role(role),
        "userid": target.user(user),
        "courseid": target.course(course),
    }


def _row(target: Target, user: str = "ct_u1", course: str = "CT-C1") -> dict[str, int]:
    return {"userid": target.user(user), "courseid": target.course(course)}


async def test_unenrol_non_member_is_silent(target: Target) -> None:
    assert await target.unenrol(_row(target)) is None
    assert await target.unenrol(_row(target)) is None


async def test_unenrol_removes_the_enrolment(target: Target) -> None:
    await target.enrol(_enrol_row(target), _enrol_row(target, "ct_u2"))
    assert await target.unenrol(_row(target)) is None
    assert await target.enrolled_ids(target.course("CT-C1")) == [target.user("ct_u2")]


async def test_unenrol_works_on_a_disabled_instance(target: Target) -> None:
    running = target.emulator("enrolling through a disabled instance")
    state = running.state
    inst = state.manual_instance(target.course("CT-DISABLED"))
    assert inst is not None
    inst.status = 0
    await target.enrol(_enrol_row(target, course="CT-DISABLED"))
    inst.status = 1
    assert await target.unenrol(_row(target, course="CT-DISABLED")) is None
    assert await target.enrolled_ids(target.course("CT-DISABLED")) == []


async def test_roleid_on_unenrol_ignored_until_52_then_rejected(target: Target) -> None:
    await target.enrol(_enrol_row(target), _enrol_row(target, role="editingteacher"))
    body = await target.unenrol({**_row(target), "roleid": target.role("student")})
    if target.at_least("5.2"):
        target.assert_error(
            body, "invalidparameter", INVALID,
            debuginfo=f"enrolments => {INVALID}: "
            "Unexpected keys (roleid) detected in parameter array.",
        )  # fmt: skip
        assert await target.enrolled_ids(target.course("CT-C1")) == [target.user("ct_u1")]
    else:
        assert body is None  # the whole enrolment goes, both roles included
        assert await target.enrolled_ids(target.course("CT-C1")) == []


async def test_unenrol_missing_user_depends_on_version(target: Target) -> None:
    body = await target.unenrol({**_row(target), "userid": MISSING})
    if target.at_least("5.1"):
        target.assert_error(body, "invaliduser", "Invalid user")
    else:
        target.assert_error(
            body, "invalidparameter", INVALID, debuginfo=f"User id not exist: {MISSING}"
        )


async def test_unenrol_missing_course_is_invalidrecord(target: Target) -> None:
    body = await target.unenrol({**_row(target), "courseid": MISSING})
    target.assert_error(body, "invalidrecord", "Can't find data record in database table course.")
    assert body["exception"] == "dml_missing_record_exception"


async def test_unenrol_without_manual_instance(target: Target) -> None:
    """≥4.5: JSON wsnoinstance; ≤4.4 on PHP 8: HTTP 500, empty body, the call rolled back."""
    await target.enrol(_enrol_row(target))
    response = await target.post(
        "enrol_manual_unenrol_users",
        {"enrolments": [_row(target), _row(target, course="CT-NOMANUAL")]},
    )
    if target.at_least("4.5"):
        target.assert_error(response.json(), "wsnoinstance")
    else:
        target.assert_php_fatal(response)
    assert await target.enrolled_ids(target.course("CT-C1")) == [target.user("ct_u1")]


async def test_unenrol_without_capability_is_nopermissions(target: Target) -> None:
    body = await target.unenrol(_row(target), token="restricted")
    target.assert_error(
        body, "nopermissions",
        "Sorry, but you do not currently have permissions to do that "
        "(Unenrol users from the course).",
    )  # fmt: skip


async def test_unenrol_error_rolls_back_earlier_rows(target: Target) -> None:
    await target.enrol(_enrol_row(target))
    body = await target.unenrol(_row(target), {**_row(target), "courseid": MISSING})
    target.assert_error(body, "invalidrecord")
    assert await target.enrolled_ids(target.course("CT-C1")) == [target.user("ct_u1")]


# -- 6. data loss on the last unenrolment vs suspension -------------------------------------------


async def _enrol_in_group_with_grade(target: Target) -> None:
    await target.enrol(_enrol_row(target))
    member = {"groupid": target.group("CT-G1"), "userid": target.user("ct_u1")}
    assert await target.call("core_group_add_group_members", {"members": [member]}) is None
    if target.running is not None:
        target.running.state.grades[(target.course("CT-C1"), target.user("ct_u1"))] = 15.5


async def test_last_unenrolment_deletes_roles_groups_and_grades(target: Target) -> None:
    await _enrol_in_group_with_grade(target)
    await target.unenrol(_row(target))
    await target.enrol(_enrol_row(target, role="teacher"))  # back, with another role
    [user] = await target.enrolled(target.course("CT-C1"))
    assert "groups" not in user  # present only when the user is in a group (§11)
    assert [r["shortname"] for r in user["roles"]] == ["teacher"]
    if target.running is not None:
        assert (target.course("CT-C1"), target.user("ct_u1")) not in target.running.state.grades


async def test_suspension_keeps_roles_groups_and_grades(target: Target) -> None:
    await _enrol_in_group_with_grade(target)
    await target.enrol({**_enrol_row(target), "suspend": 1})
    [user] = await target.enrolled(target.course("CT-C1"))
    assert [g["id"] for g in user["groups"]] == [target.group("CT-G1")]
    assert [r["shortname"] for r in user["roles"]] == ["student"]
    if target.running is not None:
        assert target.running.state.grades[(target.course("CT-C1"), target.user("ct_u1"))] == 15.5


async def test_manual_role_survives_when_another_enrolment_remains(target: Target) -> None:
    course = target.course("CT-COHORT")
    member = {
        "cohorttype": {"type": "idnumber", "value": "CONTRACT-CH1"},
        "usertype": {"type": "id", "value": str(target.user("ct_u1"))},
    }
    assert await target.call("core_cohort_add_cohort_members", {"members": [member]}) == {
        "warnings": []
    }
    await target.enrol(_enrol_row(target, course="CT-COHORT", role="editingteacher"))
    await target.unenrol(_row(target, course="CT-COHORT"))
    [user] = await target.enrolled(course)
    # The manual role has component '' and only goes with the *last* enrolment.
    assert sorted(r["shortname"] for r in user["roles"]) == ["editingteacher", "student"]
