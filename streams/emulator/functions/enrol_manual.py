"""enrol/manual/externallib.php: enrol_manual_enrol_users, enrol_manual_unenrol_users (§2–3)."""

from __future__ import annotations

from typing import Any

from streams.emulator.external import (
    OPTIONAL,
    Desc,
    Multiple,
    Single,
    Value,
    invalid_parameter,
    missing_record,
    moodle_exception,
)
from streams.emulator.functions.base import (
    Ctx,
    Function,
    assignable_roles,
    require_active_user,
    validate_course_context,
    wsnoinstance,
)
from streams.emulator.lib.enrollib import enrol_user, unenrol_user
from streams.emulator.state import ENROL_INSTANCE_ENABLED, ENROL_USER_ACTIVE, ENROL_USER_SUSPENDED

COMPONENT = "enrol_manual"


def enrol_manual_enrol_users(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for item in params["enrolments"]:
        before = ctx.txn.size
        courseid, userid, roleid = item["courseid"], item["userid"], item["roleid"]
        course = state.courses.get(courseid)
        if course is None:
            raise invalid_parameter("Context does not exist")
        validate_course_context(ctx, course)
        ctx.require("enrol/manual:enrol")
        if ctx.site_at_least("5.1"):
            user = state.users.get(userid)
            if user is None:
                raise missing_record("user", "id = ?", userid)
            require_active_user(user)
        if roleid not in assignable_roles(ctx):
            raise moodle_exception(
                "wsusercannotassign",
                f"You don't have the permission to assign this role ({roleid}) to this user "
                f"({userid}) in this course ({courseid}).",
            )
        inst = state.manual_instance(courseid)
        if (
            inst is None
            or inst.status != ENROL_INSTANCE_ENABLED
            or not state.site.manual_plugin_enabled
        ):
            raise wsnoinstance(ctx, courseid)
        status = ENROL_USER_SUSPENDED if item.get("suspend") else ENROL_USER_ACTIVE
        enrol_user(
            ctx, inst, userid, roleid, item.get("timestart", 0), item.get("timeend", 0), status
        )
        ctx.count_row(before)


def enrol_manual_unenrol_users(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for item in params["enrolments"]:
        before = ctx.txn.size
        courseid, userid = item["courseid"], item["userid"]
        course = state.courses.get(courseid)
        if course is None:
            raise missing_record("course", "id = ?", courseid)
        validate_course_context(ctx, course)
        ctx.require("enrol/manual:unenrol")
        inst = state.manual_instance(courseid)  # enabled or not: unlike enrol
        if inst is None:
            raise wsnoinstance(ctx, courseid)
        user = state.users.get(userid)
        if ctx.site_at_least("5.1"):
            if user is None:
                raise missing_record("user", "id = ?", userid)
            require_active_user(user)
        elif user is None:
            raise invalid_parameter(f"User id not exist: {userid}")
        unenrol_user(ctx, inst, userid)
        ctx.count_row(before)


def functions(at_least: Any) -> list[Function]:
    enrol_row: dict[str, Desc] = {
        "roleid": Value("int"),
        "userid": Value("int"),
        "courseid": Value("int"),
        "timestart": Value("int", OPTIONAL),
        "timeend": Value("int", OPTIONAL),
        "suspend": Value("int", OPTIONAL),
    }
    unenrol_row: dict[str, Desc] = {"userid": Value("int"), "courseid": Value("int")}
    if not at_least("5.2"):  # MDL-51152 removed the unused roleid in 5.2
        unenrol_row["roleid"] = Value("int", OPTIONAL)
    return [
        Function(
            "enrol_manual_enrol_users",
            Single({"enrolments": Multiple(Single(enrol_row))}),
            enrol_manual_enrol_users,
            component=COMPONENT,
        ),
        Function(
            "enrol_manual_unenrol_users",
            Single({"enrolments": Multiple(Single(unenrol_row))}),
            enrol_manual_unenrol_users,
            component=COMPONENT,
        ),
    ]
