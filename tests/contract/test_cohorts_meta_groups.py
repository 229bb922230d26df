"""Cohorts and cohort sync (checklist 8, §6), meta links, groups (§6, §11)."""

from __future__ import annotations

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract

INVALID = "Invalid parameter value detected"


def _member(
    cohort: str, user: str, ctype: str = "idnumber", utype: str = "username"
) -> dict[str, object]:
    return {
        "cohorttype": {"type": ctype, "value": cohort},
        "usertype": {"type": utype, "value": user},
    }


async def _add(target: Target, *members: dict[str, object]) -> object:
    return await target.call("core_cohort_add_cohort_members", {"members": list(members)})  # type: ignore[dict-item]


async def test_add_members_reports_warnings_not_errors(target: Target) -> None:
    assert await _add(target, _member("CONTRACT-CH2", "ct_u1")) == {"warnings": []}
    body = await _add(
        target,
        _member("CONTRACT-CH2", "ct_u1"),  # already a member
        _member("CONTRACT-CH2", "ct_u2", utype="email"),  # bad user type
        _member("NO-SUCH-COHORT", "ct_u2"),  # cohort not found
        _member("CONTRACT-CH2", "no_such_user"),  # user not found
        _member("CONTRACT-CH2", "ct_u3"),  # fine
    )
    assert body == {
        "warnings": [
            {
                "warningcode": "3",
                "message": "record already exists: cohort(idnumber=CONTRACT-CH2 username=ct_u1)",
            },
            {"warningcode": "1", "message": "invalid parameter: usertype=email"},
            {"warningcode": "2", "message": "cohort idnumber=NO-SUCH-COHORT not exists"},
            {"warningcode": "2", "message": "user username=no_such_user not exists"},
        ]
    }


async def test_delete_member_non_member_is_silent(target: Target) -> None:
    member = {"cohortid": target.cohort("CONTRACT-CH2"), "userid": target.user("ct_u4")}
    assert await target.call("core_cohort_delete_cohort_members", {"members": [member]}) is None


async def test_delete_member_missing_cohort_or_user(target: Target) -> None:
    body = await target.call(
        "core_cohort_delete_cohort_members",
        {"members": [{"cohortid": MISSING, "userid": target.user("ct_u1")}]},
    )
    target.assert_error(body, "invalidrecord", "Can't find data record in database table cohort.")
    body = await target.call(
        "core_cohort_delete_cohort_members",
        {"members": [{"cohortid": target.cohort("CONTRACT-CH2"), "userid": MISSING}]},
    )
    target.assert_error(body, "invaliduser", "Invalid user")
    assert body["exception"] == "dml_missing_record_exception"


async def test_create_cohort_then_duplicate_idnumber(target: Target) -> None:
    cohort = {
        "categorytype": {"type": "system", "value": ""},
        "name": "Created",
        "idnumber": "CONTRACT-NEW",
    }
    [created] = await target.call("core_cohort_create_cohorts", {"cohorts": [cohort]})
    assert (created["idnumber"], created["name"], created["visible"]) == (
        "CONTRACT-NEW",
        "Created",
        True,
    )
    body = await target.call("core_cohort_create_cohorts", {"cohorts": [cohort]})
    target.assert_error(
        body, "invalidparameter", INVALID, debuginfo="record already exists: idnumber=CONTRACT-NEW"
    )
    found = await target.call(
        "core_cohort_search_cohorts",
        {"query": "CONTRACT-NEW", "context": {"contextid": 1}, "includes": "all"},
    )
    assert [c["id"] for c in found["cohorts"]] == [created["id"]]


async def test_search_cohorts_requires_a_context(target: Target) -> None:
    body = await target.call("core_cohort_search_cohorts", {"query": "CONTRACT"})
    target.assert_error(
        body,
        "invalidparameter",
        INVALID,
        debuginfo="Missing required key in single structure: context",
    )
    found = await target.call(
        "core_cohort_search_cohorts",
        {"query": "contract-ch", "context": {"contextlevel": "system"}},
    )
    assert {c["idnumber"] for c in found["cohorts"]} >= {"CONTRACT-CH1", "CONTRACT-CH2"}


async def test_cohort_member_added_is_enrolled_by_cohort_sync(target: Target) -> None:
    await _add(target, _member("CONTRACT-CH1", "ct_u5"))
    [user] = await target.enrolled(target.course("CT-COHORT"), onlyactive="1")
    assert user["id"] == target.user("ct_u5")
    assert [r["shortname"] for r in user["roles"]] == ["student"]


async def test_cohort_member_removed_is_unenrolled_by_default(target: Target) -> None:
    await _add(target, _member("CONTRACT-CH1", "ct_u5"))
    member = {"cohortid": target.cohort("CONTRACT-CH1"), "userid": target.user("ct_u5")}
    await target.call("core_cohort_delete_cohort_members", {"members": [member]})
    assert await target.enrolled_ids(target.course("CT-COHORT")) == []


@pytest.mark.parametrize(("action", "roles"), [(2, ["student"]), (3, [])])
async def test_cohort_member_removed_is_suspended_when_configured(
    target: Target, action: int, roles: list[str]
) -> None:
    running = target.emulator("changing enrol_cohort/unenrolaction")
    running.state.site.enrol_cohort_unenrolaction = action
    await _add(target, _member("CONTRACT-CH1", "ct_u5"))
    member = {"cohortid": target.cohort("CONTRACT-CH1"), "userid": target.user("ct_u5")}
    await target.call("core_cohort_delete_cohort_members", {"members": [member]})
    [user] = await target.enrolled(target.course("CT-COHORT"), onlysuspended="1")
    assert [r["shortname"] for r in user["roles"]] == roles
    await _add(target, _member("CONTRACT-CH1", "ct_u5"))  # back in the cohort: reactivated
    assert await target.enrolled_ids(target.course("CT-COHORT"), onlyactive="1") == [
        target.user("ct_u5")
    ]


# -- meta links -----------------------------------------------------------------------------------


async def test_meta_link_syncs_enrolments_and_is_idempotent(target: Target) -> None:
    meta, child = target.course("CT-META"), target.course("CT-C1")
    await target.enrol(
        {"roleid": target.role("student"), "userid": target.user("ct_u1"), "courseid": child}
    )
    link = {"metacourseid": meta, "courseid": str(child)}
    assert await target.call("enrol_meta_add_instances", {"instances": [link]}) == [
        {"metacourseid": meta, "courseid": str(child), "status": True}
    ]
    assert await target.enrolled_ids(meta, onlyactive="1") == [target.user("ct_u1")]
    await target.enrol(
        {"roleid": target.role("student"), "userid": target.user("ct_u2"), "courseid": child}
    )
    assert await target.enrolled_ids(meta) == [target.user("ct_u1"), target.user("ct_u2")]
    again = await target.call("enrol_meta_add_instances", {"instances": [link]})
    assert again == [{"metacourseid": meta, "courseid": str(child), "status": False}]


async def test_meta_delete_removes_link_and_its_enrolments(target: Target) -> None:
    meta, child = target.course("CT-META"), target.course("CT-C1")
    await target.enrol(
        {"roleid": target.role("student"), "userid": target.user("ct_u1"), "courseid": child}
    )
    link = {"metacourseid": meta, "courseid": str(child)}
    await target.call("enrol_meta_add_instances", {"instances": [link]})
    assert await target.call("enrol_meta_delete_instances", {"instances": [link]}) == [
        {"metacourseid": meta, "courseid": str(child), "status": True}
    ]
    assert await target.enrolled_ids(meta) == []
    again = await target.call("enrol_meta_delete_instances", {"instances": [link]})
    assert again[0]["status"] is False


async def test_meta_errors(target: Target) -> None:
    body = await target.call(
        "enrol_meta_add_instances", {"instances": [{"metacourseid": MISSING, "courseid": "2"}]}
    )
    target.assert_error(
        body, "invalidparameter", INVALID,
        debuginfo=f"Meta course id = {MISSING} does not exist or no permission to add "
        "enrolment instance.",
    )  # fmt: skip  # lang string enrol_meta/wsinvalidmetacourse, as seen on 4.4 (§11)
    body = await target.call("enrol_meta_add_instances", {"instances": []})
    target.assert_error(body, "invalidparameter", INVALID, debuginfo="No instances specified")


# -- groups ---------------------------------------------------------------------------------------


async def test_group_members(target: Target) -> None:
    group, user = target.group("CT-G1"), target.user("ct_u1")
    body = await target.call(
        "core_group_add_group_members", {"members": [{"groupid": group, "userid": user}]}
    )
    target.assert_error(
        body, "invalidparameter", INVALID, debuginfo="Only enrolled users may be members of groups"
    )
    await target.enrol(
        {"roleid": target.role("student"), "userid": user, "courseid": target.course("CT-C1")}
    )
    for _ in range(2):  # a repeat is not an error
        assert (
            await target.call(
                "core_group_add_group_members", {"members": [{"groupid": group, "userid": user}]}
            )
            is None
        )
    [enrolled] = await target.enrolled(target.course("CT-C1"))
    assert [g["id"] for g in enrolled["groups"]] == [group]


async def test_group_missing(target: Target) -> None:
    body = await target.call(
        "core_group_add_group_members",
        {"members": [{"groupid": MISSING, "userid": target.user("ct_u1")}]},
    )
    target.assert_error(body, "invalidrecord", "Can't find data record in database table groups.")
