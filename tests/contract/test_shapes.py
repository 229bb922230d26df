"""Response shapes and what identity fields a caller sees (§11 "Seen with the contract suite")."""

from __future__ import annotations

import re
import time

import pytest

from tests.contract.conftest import Target

pytestmark = pytest.mark.contract


def _row(target: Target, user: str, course: str = "CT-C1", **extra: int) -> dict[str, int]:
    return {
        "roleid": target.role("student"),
        "userid": target.user(user),
        "courseid": target.course(course),
        **extra,
    }


async def _user(target: Target, course: str, user: str, token: str = "main") -> dict[str, object]:
    found = await target.call(
        "core_enrol_get_enrolled_users", {"courseid": target.course(course)}, token=token
    )
    return next(u for u in found if u["id"] == target.user(user))


async def test_enrolled_user_shape(target: Target) -> None:
    """groups only when in a group; enrolledcourses omitted when empty, by course sort order;
    department, firstaccess, lastaccess, lastcourseaccess; roles {roleid, name "", shortname,
    sortorder 0}."""
    await target.enrol(_row(target, "ct_u1", "CT-HIDDEN"), _row(target, "ct_u1"))
    await target.enrol(_row(target, "ct_u2", suspend=1))
    group = {"groupid": target.group("CT-G1"), "userid": target.user("ct_u1")}
    assert await target.call("core_group_add_group_members", {"members": [group]}) is None
    u1, u2 = await _user(target, "CT-C1", "ct_u1"), await _user(target, "CT-C1", "ct_u2")
    for user in (u1, u2):
        assert {"department", "firstaccess", "lastaccess", "lastcourseaccess"} <= set(user)
    assert u1["roles"] == [
        {"roleid": target.role("student"), "name": "", "shortname": "student", "sortorder": 0}
    ]
    assert [g["id"] for g in u1["groups"]] == [target.group("CT-G1")]  # type: ignore[index]
    assert u1["groups"][0]["descriptionformat"] == 0  # type: ignore[index]
    assert "groups" not in u2
    assert [c["shortname"] for c in u1["enrolledcourses"]] == ["CT-C1", "CT-HIDDEN"]  # type: ignore[index]
    assert "enrolledcourses" not in u2  # suspended: no active enrolment anywhere


async def test_identity_fields_follow_capabilities(target: Target) -> None:
    """email needs moodle/site:viewuseridentity, first/last names moodle/site:viewfullnames;
    the restricted user has neither, the main user both."""
    await target.enrol(_row(target, "ct_u1"))
    seen = await _user(target, "CT-C1", "ct_u1")
    assert (seen["email"], seen["firstname"], seen["lastname"]) == (
        "u1@example.invalid",
        "Ada",
        "One",
    )
    restricted = await _user(target, "CT-C1", "ct_u1", token="restricted")
    assert not {"email", "firstname", "lastname", "username", "idnumber"} & set(restricted)
    assert restricted["fullname"] == "Ada One"


async def test_users_by_field_with_viewalldetails(target: Target) -> None:
    [user] = await target.call(
        "core_user_get_users_by_field", {"field": "username", "values": ["ct_u1"]}
    )
    expected = {"auth", "suspended", "confirmed", "lang", "theme", "timezone", "mailformat"}
    assert expected <= set(user)
    assert (user["auth"], user["suspended"], user["confirmed"]) == ("manual", False, True)
    [restricted] = await target.call(
        "core_user_get_users_by_field", {"field": "id", "values": [str(target.user("ct_u1"))]},
        token="restricted",
    )  # fmt: skip
    assert not expected & set(restricted)


async def test_course_carries_courseimage_not_customfields(target: Target) -> None:
    body = await target.call(
        "core_course_get_courses_by_field", {"field": "shortname", "value": "CT-C1"}
    )
    [course] = body["courses"]
    assert "courseimage" in course and "customfields" not in course
    assert course["enrollmentmethods"] == ["manual"]


async def test_cohorts_carry_an_empty_theme(target: Target) -> None:
    found = await target.call(
        "core_cohort_search_cohorts",
        {"query": "CONTRACT-CH1", "context": {"contextid": 1}, "includes": "all"},
    )
    assert [(c["idnumber"], c["theme"]) for c in found["cohorts"]] == [("CONTRACT-CH1", "")]


async def test_site_info_shape(target: Target) -> None:
    info = await target.call("core_webservice_get_site_info")
    assert {"userprivateaccesskey", "limitconcurrentlogins"} <= set(info)
    assert re.fullmatch(r"\d{10}", info["version"])  # "2023112400": no decimals
    versions = {f["name"]: f["version"] for f in info["functions"]}
    assert versions["core_enrol_get_enrolled_users"] == info["version"]  # core: the site's
    assert re.fullmatch(r"\d{10}", versions["enrol_manual_enrol_users"])  # the plugin's own


async def test_site_info_strips_a_token_that_is_not_alphanumeric(target: Target) -> None:
    """Moodle re-reads wstoken as PARAM_ALPHANUM: a token with '-' is not found again (§11)."""
    running = target.emulator("creating a token Moodle would never generate")
    main = running.state.tokens[target.token("main")]
    bad = "contract-dash-token-000000000000"
    running.state.tokens[bad] = type(main)(bad, main.userid, "dash", main.functions)
    target.tokens["dash"] = bad
    body = await target.call("core_webservice_get_site_info", token="dash")
    target.assert_error(
        body,
        "codingerror",
        "Coding error detected, it must be fixed by a programmer: "
        "No service found in get_site_info",
    )
    assert await target.call("core_user_get_users_by_field", {"field": "id", "values": ["3"]},
                             token="dash") is not None  # fmt: skip


async def test_xml_writes_every_key_of_the_returns_description(target: Target) -> None:
    await target.enrol(_row(target, "ct_u1"))
    response = await target.raw(
        get={"wstoken": target.token("main"), "wsfunction": "core_enrol_get_enrolled_users",
             "courseid": str(target.course("CT-C1"))}
    )  # fmt: skip
    text = response.text
    assert '<KEY name="groups"><MULTIPLE>\n</MULTIPLE>\n</KEY>' in text  # absent list
    assert '<KEY name="phone1"><VALUE null="null"/>\n</KEY>' in text  # absent value
    assert '<KEY name="fullname"><VALUE>Ada One</VALUE>' in text


async def test_real_function_outside_the_service_is_accessexception(target: Target) -> None:
    """A function Moodle has (here one the emulator does not implement) but the token's service
    lacks: accessexception, not invalidrecord."""
    body = await target.call("core_competency_delete_plan", {"id": 1})
    target.assert_error(body, "accessexception", "Access control exception")
    body = await target.call("core_cohort_get_cohorts", token="restricted")  # implemented
    target.assert_error(body, "accessexception", "Access control exception")


# -- meta links ---------------------------------------------------------------------------------


async def _link(target: Target) -> None:
    link = {"metacourseid": target.course("CT-META"), "courseid": str(target.course("CT-C1"))}
    await target.call("enrol_meta_add_instances", {"instances": [link]})


async def test_meta_user_suspended_in_child_has_no_roles(target: Target) -> None:
    await target.enrol(_row(target, "ct_u1", suspend=1), _row(target, "ct_u2"))
    await _link(target)
    meta = target.course("CT-META")
    assert await target.enrolled_ids(meta, onlysuspended="1") == [target.user("ct_u1")]
    assert (await _user(target, "CT-META", "ct_u1"))["roles"] == []
    assert [r["shortname"] for r in (await _user(target, "CT-META", "ct_u2"))["roles"]] == [
        "student"
    ]


async def test_meta_expired_child_enrolment_is_expired_in_meta(target: Target) -> None:
    past = int(time.time()) - 30 * 86400
    await target.enrol(
        _row(target, "ct_u1", timestart=past - 86400, timeend=past), _row(target, "ct_u2")
    )
    await _link(target)
    meta = target.course("CT-META")
    assert await target.enrolled_ids(meta, onlyactive="1") == [target.user("ct_u2")]
    assert await target.enrolled_ids(meta, onlysuspended="1") == [target.user("ct_u1")]
