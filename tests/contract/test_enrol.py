"""enrol_manual_enrol_users (checklist 4, §2, §11) and the version quirks it shows (checklist 9)."""

from __future__ import annotations

import time

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract

INVALID = "Invalid parameter value detected"


def _row(
    target: Target, user: str = "ct_u1", course: str = "CT-C1", role: str = "student"
) -> dict[str, int]:
    return {
        "roleid": target.role(role),
        "userid": target.user(user),
        "courseid": target.course(course),
    }


async def _roles(target: Target, course: str, user: str) -> list[str]:
    for u in await target.enrolled(target.course(course)):
        if u["id"] == target.user(user):
            return sorted(r["shortname"] for r in u["roles"])
    raise AssertionError(f"{user} not enrolled in {course}")


async def test_new_then_repeated_enrolment_is_one_enrolment_one_role(target: Target) -> None:
    assert await target.enrol(_row(target)) is None
    assert await target.enrol(_row(target)) is None
    users = await target.enrolled(target.course("CT-C1"))
    assert [u["id"] for u in users] == [target.user("ct_u1")]
    assert [r["shortname"] for r in users[0]["roles"]] == ["student"]
    if target.running is not None:
        counters = target.running.state.counters
        assert (counters["user_enrolment_created"], counters["user_enrolment_updated"]) == (1, 0)
        assert counters["role_assigned"] == 1


async def test_suspend_then_resend_without_suspend_reactivates(target: Target) -> None:
    course = target.course("CT-C1")
    u1, u2 = target.user("ct_u1"), target.user("ct_u2")
    await target.enrol({**_row(target), "suspend": 1}, _row(target, "ct_u2"))  # u2: control, active
    assert await target.enrolled_ids(course, onlysuspended="1") == [u1]
    assert await target.enrolled_ids(course, onlyactive="1") == [u2]
    await target.enrol(_row(target))  # suspend omitted ⇒ ENROL_USER_ACTIVE
    assert await target.enrolled_ids(course, onlyactive="1") == [u1, u2]
    assert await target.enrolled_ids(course, onlysuspended="1") == []


async def test_omitted_times_are_reset_to_zero(target: Target) -> None:
    course = target.course("CT-C1")
    past = int(time.time()) - 7 * 86400
    u1, u2 = target.user("ct_u1"), target.user("ct_u2")
    await target.enrol(
        {**_row(target), "timestart": past - 86400, "timeend": past}, _row(target, "ct_u2")
    )
    assert await target.enrolled_ids(course, onlysuspended="1") == [u1]
    await target.enrol(_row(target))  # no timeend ⇒ 0 ⇒ no end date
    assert await target.enrolled_ids(course, onlyactive="1") == [u1, u2]
    if target.running is not None:
        ue = target.running.state.ue[
            (target.running.state.manual_instance(course).id, target.user("ct_u1"))
        ]  # type: ignore[union-attr]
        assert (ue.timestart, ue.timeend, ue.status) == (0, 0, 0)


async def test_different_role_is_added_beside_the_first(target: Target) -> None:
    await target.enrol(_row(target))
    await target.enrol(_row(target, role="editingteacher"))
    assert await _roles(target, "CT-C1", "ct_u1") == ["editingteacher", "student"]


@pytest.mark.parametrize(
    ("first", "second", "expect"), [(1, 0, "onlyactive"), (0, 1, "onlysuspended")]
)
async def test_two_rows_for_one_user_in_one_call_last_wins(
    target: Target, first: int, second: int, expect: str
) -> None:
    control = {**_row(target, "ct_u2"), "suspend": first}  # stays in the state u1 leaves
    await target.enrol(
        {**_row(target), "suspend": first}, {**_row(target), "suspend": second}, control
    )
    selected = await target.enrolled_ids(target.course("CT-C1"), **{expect: "1"})
    assert selected == [target.user("ct_u1")]


async def test_role_not_assignable(target: Target) -> None:
    row = _row(target, role="manager")
    body = await target.enrol(row)
    target.assert_error(
        body,
        "wsusercannotassign",
        f"You don't have the permission to assign this role ({row['roleid']}) to this user "
        f"({row['userid']}) in this course ({row['courseid']}).",
    )


async def test_role_that_does_not_exist_is_not_assignable(target: Target) -> None:
    body = await target.enrol({**_row(target), "roleid": MISSING})
    target.assert_error(body, "wsusercannotassign")


async def test_without_role_assign_capability_no_role_is_assignable(target: Target) -> None:
    body = await target.enrol(_row(target), token="restricted")
    target.assert_error(body, "wsusercannotassign")


WSNOINSTANCE = (
    "Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {})"
)


@pytest.mark.parametrize("course", ["CT-DISABLED", "CT-NOMANUAL"])
async def test_no_usable_manual_instance(target: Target, course: str) -> None:
    """≥4.5: JSON wsnoinstance. ≤4.4 on PHP 8 (the §11 site): building that exception dies in a
    TypeError, HTTP 500 with an empty body; the earlier good row is rolled back too."""
    courseid = target.course(course)
    response = await target.post(
        "enrol_manual_enrol_users",
        {"enrolments": [_row(target, "ct_u2"), _row(target, course=course)]},
    )
    if target.at_least("4.5"):
        target.assert_error(response.json(), "wsnoinstance", WSNOINSTANCE.format(courseid))
    else:
        target.assert_php_fatal(response)
    assert await target.enrolled_ids(target.course("CT-C1")) == []


async def test_no_usable_manual_instance_on_php7_is_json_with_placeholder(target: Target) -> None:
    running = target.emulator("switching the PHP version")
    running.state.site.php = "7.4"
    body = await target.enrol(_row(target, course="CT-DISABLED"))
    shown = str(target.course("CT-DISABLED")) if target.at_least("4.5") else "{$a->courseid}"
    target.assert_error(body, "wsnoinstance", WSNOINSTANCE.format(shown))


async def test_missing_course_is_invalidparameter(target: Target) -> None:
    body = await target.enrol({**_row(target), "courseid": MISSING})
    target.assert_error(body, "invalidparameter", INVALID, debuginfo="Context does not exist")


async def test_missing_user_depends_on_version(target: Target) -> None:
    body = await target.enrol({**_row(target), "userid": MISSING})
    if target.at_least("5.1"):
        target.assert_error(body, "invaliduser", "Invalid user")
        assert body["exception"] == "dml_missing_record_exception"
    else:
        target.assert_error(
            body,
            "codingerror",
            "Coding error detected, it must be fixed by a programmer: "
            "User ID does not exist or is deleted!",
        )


async def test_missing_user_rolls_back_earlier_rows(target: Target) -> None:
    body = await target.enrol(_row(target), {**_row(target, "ct_u2"), "userid": MISSING})
    assert body["errorcode"] in ("invaliduser", "codingerror")
    assert await target.enrolled_ids(target.course("CT-C1")) == []


async def test_deleted_user(target: Target) -> None:
    deleted = target.ids.get("deleted", {}).get("ct_deleted")
    if deleted is None:
        pytest.skip("no deleted contract user on this site")
    body = await target.enrol({**_row(target), "userid": deleted})
    target.assert_error(body, "userdeleted" if target.at_least("5.1") else "codingerror")


async def test_hidden_course_needs_viewhiddencourses(target: Target) -> None:
    assert await target.enrol(_row(target, course="CT-HIDDEN")) is None
    body = await target.enrol(_row(target, "ct_u2", course="CT-HIDDEN"), token="restricted")
    target.assert_error(body, "requireloginerror", "Course or activity not accessible.")


async def test_welcome_message_hook_fires_on_every_call_from_45(target: Target) -> None:
    running = target.emulator("counting welcome messages")
    row = _row(target, course="CT-WELCOME")
    await target.enrol(row)
    await target.enrol(row)  # identical tuple: no enrolment change
    state = running.state
    sent = sum(state.welcome_messages.values())
    assert sent == (2 if target.at_least("4.5") else 1)
    assert state.counters["user_enrolment_updated"] == 0
