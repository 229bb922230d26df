"""Functions the product needs beyond enrol/unenrol: groups, a user's courses, cohorts,
enrolment methods, role unassignment (issue 8 point 4; moodle-ws.md §4, §6, §11)."""

from __future__ import annotations

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract


def _row(target: Target, user: str, course: str = "CT-C1", role: str = "student") -> dict[str, int]:
    return {
        "roleid": target.role(role),
        "userid": target.user(user),
        "courseid": target.course(course),
    }


async def test_course_groups_and_group_members(target: Target) -> None:
    groups = await target.call("core_group_get_course_groups", {"courseid": target.course("CT-C1")})
    assert [(g["id"], g["name"], g["descriptionformat"]) for g in groups] == [
        (target.group("CT-G1"), "CT-G1", 0)
    ]
    await target.enrol(_row(target, "ct_u2"), _row(target, "ct_u1"))
    members = [
        {"groupid": target.group("CT-G1"), "userid": target.user(u)} for u in ("ct_u2", "ct_u1")
    ]
    await target.call("core_group_add_group_members", {"members": members})
    found = await target.call("core_group_get_group_members", {"groupids": [target.group("CT-G1")]})
    both = sorted([target.user("ct_u1"), target.user("ct_u2")])
    assert found == [{"groupid": target.group("CT-G1"), "userids": both}]
    body = await target.call("core_group_get_group_members", {"groupids": [MISSING]})
    target.assert_error(body, "invalidrecord", "Can't find data record in database table groups.")


async def test_users_courses_lists_active_enrolments_with_idnumber(target: Target) -> None:
    await target.enrol(_row(target, "ct_u1"), {**_row(target, "ct_u1", "CT-META"), "suspend": 1})
    courses = await target.call("core_enrol_get_users_courses", {"userid": target.user("ct_u1")})
    assert [(c["id"], c["idnumber"]) for c in courses] == [(target.course("CT-C1"), "CT-C1-ID")]
    assert courses[0]["enrolledusercount"] == 1


async def test_get_cohorts_and_members(target: Target) -> None:
    member = {
        "cohorttype": {"type": "idnumber", "value": "CONTRACT-CH2"},
        "usertype": {"type": "username", "value": "ct_u3"},
    }
    await target.call("core_cohort_add_cohort_members", {"members": [member]})
    ch2 = target.cohort("CONTRACT-CH2")
    [cohort] = await target.call("core_cohort_get_cohorts", {"cohortids": [ch2]})
    assert (cohort["idnumber"], cohort["theme"]) == ("CONTRACT-CH2", "")
    everyone = await target.call("core_cohort_get_cohorts")
    assert {c["idnumber"] for c in everyone} >= {"CONTRACT-CH1", "CONTRACT-CH2"}
    members = await target.call("core_cohort_get_cohort_members", {"cohortids": [ch2]})
    assert members == [{"cohortid": ch2, "userids": [target.user("ct_u3")]}]
    body = await target.call("core_cohort_get_cohort_members", {"cohortids": [MISSING]})
    target.assert_error(body, "invalidrecord", "Can't find data record in database table cohort.")


async def test_enrolment_methods_never_list_manual_instances(target: Target) -> None:
    """Only plugins with get_enrol_info() (self, guest) are listed: no way to see a manual
    instance here; core_course_get_courses_by_field's enrollmentmethods shows enabled ones."""
    for course in ("CT-C1", "CT-DISABLED", "CT-NOMANUAL", "CT-COHORT"):
        methods = await target.call(
            "core_enrol_get_course_enrolment_methods", {"courseid": target.course(course)}
        )
        assert methods == [], (course, methods)
    body = await target.call("core_enrol_get_course_enrolment_methods", {"courseid": MISSING})
    target.assert_error(body, "invalidrecord", "Can't find data record in database table course.")
    disabled = await target.call(
        "core_course_get_courses_by_field", {"field": "shortname", "value": "CT-DISABLED"}
    )
    assert disabled["courses"][0]["enrollmentmethods"] == []


async def test_unassign_role_changes_a_users_role(target: Target) -> None:
    """Enrol with the new role, then unassign the old one: one enrolment, the new role only."""
    await target.enrol(_row(target, "ct_u1"))
    await target.enrol(_row(target, "ct_u1", role="editingteacher"))
    body = await target.call(
        "core_role_unassign_roles",
        {"unassignments": [{"roleid": target.role("student"), "userid": target.user("ct_u1"),
                            "contextlevel": "course", "instanceid": target.course("CT-C1")}]},
    )  # fmt: skip
    assert body is None
    [user] = await target.enrolled(target.course("CT-C1"))
    assert [r["shortname"] for r in user["roles"]] == ["editingteacher"]


async def test_unassign_role_keeps_roles_from_cohort_sync(target: Target) -> None:
    member = {
        "cohorttype": {"type": "idnumber", "value": "CONTRACT-CH1"},
        "usertype": {"type": "username", "value": "ct_u4"},
    }
    await target.call("core_cohort_add_cohort_members", {"members": [member]})
    body = await target.call(
        "core_role_unassign_roles",
        {"unassignments": [{"roleid": target.role("student"), "userid": target.user("ct_u4"),
                            "contextlevel": "course", "instanceid": target.course("CT-COHORT")}]},
    )  # fmt: skip
    assert body is None
    [user] = await target.enrolled(target.course("CT-COHORT"))
    assert [r["shortname"] for r in user["roles"]] == ["student"]  # held by enrol_cohort


async def test_unassign_role_errors(target: Target) -> None:
    base = {"roleid": target.role("student"), "userid": target.user("ct_u1")}
    body = await target.call("core_role_unassign_roles", {"unassignments": [base]})
    target.assert_error(body, "invalidparameter")
    body = await target.call(
        "core_role_unassign_roles",
        {"unassignments": [{**base, "roleid": target.role("manager"), "contextlevel": "course",
                            "instanceid": target.course("CT-C1")}]},
    )  # fmt: skip
    target.assert_error(body, "invalidparameter")
    body = await target.call(
        "core_role_unassign_roles",
        {"unassignments": [{**base, "contextlevel": "course", "instanceid": MISSING}]},
    )
    target.assert_error(body, "invalidparameter")
