"""group/externallib.php: add members, course groups, group members (moodle-ws.md §6, §11)."""

from __future__ import annotations

from typing import Any, Final

from streams.emulator.external import (
    Multiple,
    Single,
    Value,
    WsError,
    invalid_parameter,
    missing_record,
)
from streams.emulator.functions.base import (
    Ctx,
    Function,
    course_context_error,
    validate_course_context,
)
from streams.emulator.state import Group


def core_group_add_group_members(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for member in params["members"]:
        before = ctx.txn.size
        group = state.groups.get(member["groupid"])
        if group is None:
            raise missing_record("groups", "id = ?", member["groupid"])
        user = state.users.get(member["userid"])
        if user is None or user.deleted:
            raise missing_record("user", "id = ? AND deleted = ?", member["userid"], 0)
        validate_course_context(ctx, state.courses[group.courseid])
        ctx.require("moodle/course:managegroups")
        if not state.is_enrolled(group.courseid, user.id):
            raise invalid_parameter("Only enrolled users may be members of groups")
        members = state.group_members.setdefault(group.id, {})
        if user.id not in members:
            ctx.txn.dset(members, user.id, ("", 0))
            ctx.txn.event("group_member_added")
        ctx.count_row(before)


def core_group_get_course_groups(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    courseid = params["courseid"]
    course = state.courses.get(courseid)
    if course is None:
        raise missing_record("course", "id = ?", courseid)
    try:
        validate_course_context(ctx, course)
    except WsError as exc:
        raise course_context_error(courseid, exc) from None
    ctx.require("moodle/course:managegroups")
    groups = sorted((g for g in state.groups.values() if g.courseid == courseid), key=_by_name)
    return [_group_out(g) for g in groups]


def core_group_get_group_members(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    result = []
    for groupid in params["groupids"]:
        group = state.groups.get(groupid)
        if group is None:
            raise missing_record("groups", "id = ?", groupid)
        validate_course_context(ctx, state.courses[group.courseid])
        ctx.require("moodle/course:managegroups")
        members = sorted(state.group_members.get(groupid, {}))
        result.append({"groupid": groupid, "userids": members})
    return result


def create_group(ctx: Ctx, courseid: int, name: str) -> int:
    state = ctx.state
    group = Group(state.next_id("groups", state.groups), courseid, name)
    ctx.txn.dset(state.groups, group.id, group)
    ctx.txn.dset(state.group_members, group.id, {})
    return group.id


def _by_name(group: Group) -> tuple[str, int]:
    return group.name, group.id


def _group_out(group: Group) -> dict[str, Any]:
    return {
        "id": group.id, "courseid": group.courseid, "name": group.name,
        "description": group.description, "descriptionformat": group.descriptionformat,
        "enrolmentkey": group.enrolmentkey, "idnumber": group.idnumber,
        "visibility": 0, "participation": True,
    }  # fmt: skip


GROUP: Final = Single(
    {
        "id": Value("int"), "courseid": Value("int"), "name": Value("text"),
        "description": Value("raw"), "descriptionformat": Value("int"),
        "enrolmentkey": Value("raw"), "idnumber": Value("raw"),
        "visibility": Value("int"), "participation": Value("bool"),
    }
)  # fmt: skip


def functions(at_least: Any) -> list[Function]:
    return [
        Function(
            "core_group_add_group_members",
            Single(
                {"members": Multiple(Single({"groupid": Value("int"), "userid": Value("int")}))}
            ),
            core_group_add_group_members,
        ),
        Function(
            "core_group_get_course_groups",
            Single({"courseid": Value("int")}),
            core_group_get_course_groups,
            Multiple(GROUP),
        ),
        Function(
            "core_group_get_group_members",
            Single({"groupids": Multiple(Value("int"))}),
            core_group_get_group_members,
            Multiple(Single({"groupid": Value("int"), "userids": Multiple(Value("int"))})),
        ),
    ]
