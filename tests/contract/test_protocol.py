"""REST protocol: parameters, formats, error shape, check order, validation, transactions.

Checklist items 1, 2 and 3 of moodle-ws.md, and the §11 max_input_vars observation.
"""

from __future__ import annotations

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract

INVALID = "Invalid parameter value detected"


def _row(target: Target, user: str = "ct_u1", course: str = "CT-C1") -> dict[str, int]:
    return {
        "roleid": target.role("student"),
        "userid": target.user(user),
        "courseid": target.course(course),
    }


# -- 1. parameters --------------------------------------------------------------------------------


async def test_post_overrides_get(target: Target) -> None:
    """array_merge($_GET, $_POST): the POSTed value of a top-level key wins."""
    get = {
        "wstoken": target.token("main"),
        "wsfunction": "core_user_get_users_by_field",
        "moodlewsrestformat": "json",
        "field": "username",
        "values[0]": "ct_u1",
    }
    response = await target.raw(
        get=get, post=[("field", "id"), ("values[0]", str(target.user("ct_u2")))]
    )
    assert [u["id"] for u in response.json()] == [target.user("ct_u2")]


async def test_parameters_from_query_string_alone(target: Target) -> None:
    get = {
        "wstoken": target.token("main"),
        "wsfunction": "core_user_get_users_by_field",
        "moodlewsrestformat": "json",
        "field": "username",
        "values[0]": "ct_u1",
    }
    response = await target.raw(get=get)
    assert [u["id"] for u in response.json()] == [target.user("ct_u1")]


async def test_json_body_is_ignored_and_looks_like_no_token(target: Target) -> None:
    body = b'{"wstoken": "%s", "field": "id", "values": [2]}' % target.token("main").encode()
    response = await target.raw(
        get={"wsfunction": "core_user_get_users_by_field", "moodlewsrestformat": "json"},
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    target.assert_error(response.json(), "invalidtoken", "Invalid token - token not found")


async def test_moodlewssetting_parameters_are_not_function_parameters(target: Target) -> None:
    result = await target.call(
        "core_user_get_users_by_field",
        {"field": "username", "values": ["ct_u1"], "moodlewssettingfilter": "true",
         "moodlewssettinglang": "en"},
    )  # fmt: skip
    assert [u["id"] for u in result] == [target.user("ct_u1")]


async def test_unexpected_top_level_key_is_invalidparameter(target: Target) -> None:
    body = await target.call(
        "core_user_get_users_by_field", {"field": "id", "values": ["2"], "surprise": "1"}
    )
    target.assert_error(
        body, "invalidparameter", INVALID,
        debuginfo="Unexpected keys (surprise) detected in parameter array.",
    )  # fmt: skip


# -- 2. formats and error shape -------------------------------------------------------------------


async def test_default_and_unknown_formats_answer_xml(target: Target) -> None:
    for fmt in (None, "yaml"):
        get = {"wstoken": "not-a-token", "wsfunction": "core_webservice_get_site_info"}
        if fmt:
            get["moodlewsrestformat"] = fmt
        response = await target.raw(get=get)
        assert response.status_code == 200
        assert "<EXCEPTION class=" in response.text
        assert "<ERRORCODE>invalidtoken</ERRORCODE>" in response.text
        assert "<MESSAGE>Invalid token - token not found</MESSAGE>" in response.text


async def test_xml_success_response(target: Target) -> None:
    response = await target.raw(
        get={"wstoken": target.token("main"), "wsfunction": "core_webservice_get_site_info"}
    )
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8" ?>')
    assert '<KEY name="release"><VALUE>' in response.text


async def test_errors_are_http_200_json_with_moodle_key_order(target: Target) -> None:
    response = await target.raw(
        get={"wstoken": "nope", "wsfunction": "x", "moodlewsrestformat": "json"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body)[:3] == ["exception", "errorcode", "message"]


async def test_void_functions_answer_null(target: Target) -> None:
    response = await target.raw(
        get={"wsfunction": "enrol_manual_unenrol_users", "moodlewsrestformat": "json"},
        post=[
            ("wstoken", target.token("main")),
            ("enrolments[0][userid]", str(target.user("ct_u6"))),
            ("enrolments[0][courseid]", str(target.course("CT-C1"))),
        ],
    )
    assert response.status_code == 200
    assert response.text == "null"


async def test_rest_disabled_answers_403_with_empty_body(target: Target) -> None:
    running = target.emulator("disabling the REST protocol")
    running.state.site.rest_enabled = False
    response = await target.raw(get={"wstoken": target.token("main"), "wsfunction": "x"})
    assert (response.status_code, response.content) == (403, b"")


async def test_debuginfo_only_when_debugging(target: Target) -> None:
    running = target.emulator("switching the debug level")
    bad = {"enrolments": [{"roleid": "x", "userid": 1, "courseid": 1}]}
    assert "debuginfo" in await target.call("enrol_manual_enrol_users", bad)
    running.state.site.debug = False
    body = await target.call("enrol_manual_enrol_users", bad)
    assert body == {
        "exception": body["exception"],
        "errorcode": "invalidparameter",
        "message": INVALID,
    }


# -- 3. order of checks ---------------------------------------------------------------------------


async def test_token_is_checked_before_the_function(target: Target) -> None:
    response = await target.raw(
        get={"wstoken": "bad", "wsfunction": "no_such", "moodlewsrestformat": "json"}
    )
    target.assert_error(response.json(), "invalidtoken")


async def test_missing_token(target: Target) -> None:
    response = await target.raw(
        get={"wsfunction": "core_webservice_get_site_info", "moodlewsrestformat": "json"}
    )
    target.assert_error(response.json(), "invalidtoken", "Invalid token - token not found")


async def test_unknown_function_is_invalidrecord(target: Target) -> None:
    body = await target.call("local_nothing_here")
    target.assert_error(
        body, "invalidrecord", "Can't find data record in database table external_functions."
    )
    assert body["exception"] == "dml_missing_record_exception"


async def test_missing_function_name(target: Target) -> None:
    response = await target.raw(get={"wstoken": target.token("main"), "moodlewsrestformat": "json"})
    target.assert_error(
        response.json(), "invalidparameter", INVALID, debuginfo="Missing function name"
    )


async def test_function_outside_the_tokens_service_is_accessexception(target: Target) -> None:
    body = await target.call(
        "core_cohort_add_cohort_members",
        {
            "members": [
                {
                    "cohorttype": {"type": "id", "value": "1"},
                    "usertype": {"type": "id", "value": "1"},
                }
            ]
        },
        token="restricted",
    )
    target.assert_error(body, "accessexception", "Access control exception")
    assert body["exception"] == "webservice_access_exception"
    if "debuginfo" in body or target.kind == "emulator":
        assert body["debuginfo"].startswith(
            "Access to the function core_cohort_add_cohort_members() is not allowed."
        )


async def test_parameters_are_validated_before_any_item(target: Target) -> None:
    """Row 0 would fail per item (role not assignable); row 1 fails validation: validation wins."""
    rows = [
        {**_row(target), "roleid": target.role("manager")},
        {**_row(target, "ct_u2"), "userid": "abc"},
    ]
    body = await target.enrol(*rows)
    target.assert_error(body, "invalidparameter", INVALID)


# -- parameter validation messages (§1) -----------------------------------------------------------

_TYPE = 'Invalid external api parameter: the value is "{v}", the server was expecting "int" type'


@pytest.mark.parametrize(
    ("field", "value", "inner"),
    [
        ("userid", "abc", "userid => " + INVALID + ": " + _TYPE.format(v="abc")),
        ("userid", "5.0", "userid => " + INVALID + ": " + _TYPE.format(v="5.0")),
        ("suspend", "true", "suspend => " + INVALID + ": " + _TYPE.format(v="true")),
        ("courseid", None, "Missing required key in single structure: courseid"),
        ("extra", "1", "Unexpected keys (extra) detected in parameter array."),
    ],
)
async def test_validation_messages(
    target: Target, field: str, value: str | None, inner: str
) -> None:
    row: dict[str, object] = dict(_row(target))
    if value is None:
        row.pop(field)
    else:
        row[field] = value
    body = await target.enrol(row)  # type: ignore[arg-type]
    target.assert_error(
        body, "invalidparameter", INVALID, debuginfo=f"enrolments => {INVALID}: {inner}"
    )


async def test_missing_list_cannot_be_sent_empty(target: Target) -> None:
    body = await target.call("enrol_manual_enrol_users", {"enrolments": []})
    target.assert_error(
        body,
        "invalidparameter",
        INVALID,
        debuginfo="Missing required key in single structure: enrolments",
    )


async def test_array_where_scalar_expected(target: Target) -> None:
    body = await target.enrol({**_row(target), "userid": [1]})  # type: ignore[dict-item]
    target.assert_error(
        body, "invalidparameter", INVALID,
        debuginfo=f"enrolments => {INVALID}: userid => {INVALID}: "
        "Scalar type expected, array or object received.",
    )  # fmt: skip


async def test_scalar_where_list_expected(target: Target) -> None:
    body = await target.call("enrol_manual_enrol_users", {"enrolments": "abc"})
    target.assert_error(
        body, "invalidparameter", INVALID,
        debuginfo=f"enrolments => {INVALID}: Only arrays accepted. The bad value is: 'abc'",
    )  # fmt: skip


# -- 3. one transaction per call ------------------------------------------------------------------


async def test_first_error_rolls_back_every_earlier_row(target: Target) -> None:
    good = _row(target, "ct_u1")
    bad = {**_row(target, "ct_u2"), "courseid": MISSING}
    body = await target.enrol(good, bad)
    target.assert_error(body, "invalidparameter", INVALID, debuginfo="Context does not exist")
    assert target.user("ct_u1") not in await target.enrolled_ids(target.course("CT-C1"))


# -- §11: PHP max_input_vars, counted differently by the two parsers ------------------------------


def _rows(target: Target, n: int) -> list[dict[str, int]]:
    users = ["ct_u1", "ct_u2", "ct_u3", "ct_u4", "ct_u5", "ct_u6"][:n]
    return [
        {
            "roleid": target.role("student"),
            "userid": target.user(u),
            "courseid": target.course("CT-C1"),
        }
        for u in users
    ]


async def test_post_keeps_max_input_vars_plus_one_cut_inside_a_row(target: Target) -> None:
    """Limit 13, 6 rows POSTed: PHP keeps 14 variables (wstoken + 4 rows + a roleid), so the
    5th row lacks userid and nothing is applied (§11)."""
    running = target.emulator("changing PHP max_input_vars")
    running.state.site.max_input_vars = 13
    body = await target.enrol(*_rows(target, 6))
    target.assert_error(
        body, "invalidparameter", INVALID,
        debuginfo=f"enrolments => {INVALID}: Missing required key in single structure: userid",
    )  # fmt: skip
    assert await target.enrolled_ids(target.course("CT-C1")) == []
    assert running.emulator.stats.truncated_calls == 1


async def test_post_keeps_max_input_vars_plus_one_whole_rows(target: Target) -> None:
    """Limit 6, 2 rows POSTed: 7 variables fit (wstoken + 6): null, both applied (§11)."""
    running = target.emulator("changing PHP max_input_vars")
    running.state.site.max_input_vars = 6
    assert await target.enrol(*_rows(target, 2)) is None
    assert await target.enrolled_ids(target.course("CT-C1")) == [
        target.user("ct_u1"), target.user("ct_u2")
    ]  # fmt: skip
    assert running.emulator.stats.truncated_calls == 0


async def test_post_silently_drops_whole_rows_past_the_limit(target: Target) -> None:
    """Limit 15, 6 rows: 16 kept = wstoken + 5 rows: null, and the 6th row silently dropped."""
    running = target.emulator("changing PHP max_input_vars")
    running.state.site.max_input_vars = 15
    rows = _rows(target, 6)
    assert await target.enrol(*rows) is None
    assert await target.enrolled_ids(target.course("CT-C1")) == [r["userid"] for r in rows[:5]]
    assert running.emulator.stats.truncated_calls == 1


async def test_query_string_keeps_exactly_max_input_vars(target: Target) -> None:
    """GET: limit 6 keeps wstoken, wsfunction, moodlewsrestformat and 3 more: one row of 3,
    the second row dropped whole."""
    running = target.emulator("changing PHP max_input_vars")
    running.state.site.max_input_vars = 6
    rows = _rows(target, 2)
    get = [("wstoken", target.token("main")), ("wsfunction", "enrol_manual_enrol_users"),
           ("moodlewsrestformat", "json")]  # fmt: skip
    for i, row in enumerate(rows):
        get += [(f"enrolments[{i}][{k}]", str(v)) for k, v in row.items()]
    response = await target.raw(get=get)
    assert response.text == "null"
    assert await target.enrolled_ids(target.course("CT-C1")) == [rows[0]["userid"]]
