"""Reads and lookups: get_enrolled_users (checklist 7), users and courses by field (§11)."""

from __future__ import annotations

import time

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract

INVALID = "Invalid parameter value detected"


def _row(target: Target, user: str, **extra: int) -> dict[str, int]:
    return {
        "roleid": target.role("student"),
        "userid": target.user(user),
        "courseid": target.course("CT-C1"),
        **extra,
    }


async def _three_states(target: Target) -> tuple[int, int, int]:
    """ct_u3 active, ct_u1 suspended, ct_u2 expired (timeend in the past)."""
    past = int(time.time()) - 30 * 86400
    await target.enrol(
        _row(target, "ct_u3"),
        _row(target, "ct_u1", suspend=1),
        _row(target, "ct_u2", timestart=past - 86400, timeend=past),
    )
    return target.user("ct_u3"), target.user("ct_u1"), target.user("ct_u2")


async def test_default_lists_every_enrolment_state_sorted_by_id(target: Target) -> None:
    active, suspended, expired = await _three_states(target)
    users = await target.enrolled(target.course("CT-C1"))
    assert [u["id"] for u in users] == sorted([active, suspended, expired])
    for user in users:  # no per-enrolment status, dates or method
        assert not {"status", "timestart", "timeend", "enrol", "suspended"} & set(user)


async def test_onlyactive_and_onlysuspended_partition_the_list(target: Target) -> None:
    active, suspended, expired = await _three_states(target)
    course = target.course("CT-C1")
    assert await target.enrolled_ids(course, onlyactive="1") == [active]
    assert await target.enrolled_ids(course, onlysuspended="1") == sorted([suspended, expired])


async def test_option_value_zero_means_off(target: Target) -> None:
    await _three_states(target)
    assert len(await target.enrolled_ids(target.course("CT-C1"), onlyactive="0")) == 3


async def test_onlyactive_with_onlysuspended_is_codingerror(target: Target) -> None:
    body = await target.call(
        "core_enrol_get_enrolled_users",
        {"courseid": target.course("CT-C1"), "options": [
            {"name": "onlyactive", "value": "1"}, {"name": "onlysuspended", "value": "1"}]},
    )  # fmt: skip
    target.assert_error(
        body,
        "codingerror",
        "Coding error detected, it must be fixed by a programmer: "
        "Both onlyactive and onlysuspended are set, this is probably not what you want!",
    )


async def test_userfields_trims_the_user_object(target: Target) -> None:
    await target.enrol(_row(target, "ct_u1"))
    [user] = await target.enrolled(target.course("CT-C1"), userfields="id,idnumber")
    assert set(user) <= {"id", "idnumber", "fullname"}
    assert user["id"] == target.user("ct_u1")


async def test_limitfrom_and_limitnumber_page(target: Target) -> None:
    users = ["ct_u1", "ct_u2", "ct_u3", "ct_u4", "ct_u5"]
    await target.enrol(*(_row(target, u) for u in users))
    course = target.course("CT-C1")
    pages = [
        await target.enrolled_ids(course, limitfrom=str(start), limitnumber="2")
        for start in (0, 2, 4)
    ]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [i for page in pages for i in page] == sorted(target.user(u) for u in users)


async def test_enrolled_users_of_missing_course_is_invalidrecord(target: Target) -> None:
    body = await target.call("core_enrol_get_enrolled_users", {"courseid": MISSING})
    target.assert_error(body, "invalidrecord", "Can't find data record in database table course.")


# -- core_user_get_users_by_field -----------------------------------------------------------------


async def test_users_by_field_sorted_deduplicated_missing_omitted(target: Target) -> None:
    values = ["CT0003", "CT0001", "NOPE", "CT0003"]
    users = await target.call(
        "core_user_get_users_by_field", {"field": "idnumber", "values": values}
    )
    assert [u["id"] for u in users] == [target.user("ct_u1"), target.user("ct_u3")]
    assert [u["idnumber"] for u in users] == ["CT0001", "CT0003"]


async def test_users_by_field_excludes_deleted_users(target: Target) -> None:
    users = await target.call(
        "core_user_get_users_by_field", {"field": "idnumber", "values": ["CT0020"]}
    )
    assert users == []


async def test_users_by_field_bad_field_is_codingerror(target: Target) -> None:
    body = await target.call(
        "core_user_get_users_by_field", {"field": "lastname", "values": ["One"]}
    )
    target.assert_error(
        body,
        "codingerror",
        "Coding error detected, it must be fixed by a programmer: invalid field parameter",
    )


async def test_users_by_field_missing_values_is_invalidparameter(target: Target) -> None:
    body = await target.call("core_user_get_users_by_field", {"field": "id"})
    target.assert_error(
        body,
        "invalidparameter",
        INVALID,
        debuginfo="Missing required key in single structure: values",
    )


async def test_users_by_field_invalid_id_value(target: Target) -> None:
    body = await target.call("core_user_get_users_by_field", {"field": "id", "values": ["12abc"]})
    target.assert_error(
        body, "invalidparameter", INVALID,
        debuginfo="The field 'id' value is invalid: 12abc(cleaned value: 12)",
    )  # fmt: skip


async def test_users_by_idnumber_needs_idnumber_visibility(target: Target) -> None:
    """Without moodle/user:viewalldetails the searched field is hidden, so nothing is returned."""
    body = await target.call(
        "core_user_get_users_by_field",
        {"field": "idnumber", "values": ["CT0001"]},
        token="restricted",
    )
    assert body == []
    by_id = await target.call(
        "core_user_get_users_by_field", {"field": "id", "values": [str(target.user("ct_u1"))]},
        token="restricted",
    )  # fmt: skip
    assert [u["id"] for u in by_id] == [target.user("ct_u1")]
    assert "idnumber" not in by_id[0]


# -- core_course_get_courses_by_field -------------------------------------------------------------


async def test_course_by_idnumber_found_without_idnumber_in_answer(target: Target) -> None:
    body = await target.call(
        "core_course_get_courses_by_field", {"field": "idnumber", "value": "CT-C1-ID"}
    )
    assert [c["id"] for c in body["courses"]] == [target.course("CT-C1")]
    assert "idnumber" not in body["courses"][0]  # needs moodle/course:update
    assert body["warnings"] == []


async def test_course_by_idnumber_with_course_update_shows_idnumber(target: Target) -> None:
    running = target.emulator("granting moodle/course:update")
    user = running.state.users[running.state.tokens[target.token("main")].userid]
    user.capabilities = user.capabilities | {"moodle/course:update"}
    body = await target.call(
        "core_course_get_courses_by_field", {"field": "idnumber", "value": "CT-C1-ID"}
    )
    assert body["courses"][0]["idnumber"] == "CT-C1-ID"


async def test_unknown_course_is_an_empty_list(target: Target) -> None:
    for field, value in (("idnumber", "NO-SUCH"), ("id", str(MISSING)), ("shortname", "NO-SUCH")):
        body = await target.call(
            "core_course_get_courses_by_field", {"field": field, "value": value}
        )
        assert body == {"courses": [], "warnings": []}


async def test_ids_with_a_missing_course_hits_moodles_null_bug(target: Target) -> None:
    body = await target.call(
        "core_course_get_courses_by_field",
        {"field": "ids", "value": f"{target.course('CT-C1')},{MISSING}"},
    )
    assert body == {
        "exception": "Error",
        "message": 'Attempt to assign property "contextvalidated" on null',
    }


async def test_courses_by_field_bad_field(target: Target) -> None:
    body = await target.call(
        "core_course_get_courses_by_field", {"field": "fullname", "value": "x"}
    )
    target.assert_error(body, "invalidparameter", INVALID, debuginfo="Invalid field name")
