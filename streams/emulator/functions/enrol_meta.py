"""enrol/meta/classes/external: enrol_meta_add_instances, enrol_meta_delete_instances (Moodle
≥4.0; moodle-ws.md §6, §11). No delegated transaction in Moodle: each link is applied alone."""

from __future__ import annotations

from typing import Any

from streams.emulator.external import (
    DEFAULT,
    Multiple,
    Single,
    Value,
    WsError,
    clean_param,
    invalid_parameter,
)
from streams.emulator.functions.base import Ctx, Function, validate_course_context
from streams.emulator.functions.group import create_group
from streams.emulator.lib.enrollib import unenrol_user
from streams.emulator.lib.sync import meta_sync_instance
from streams.emulator.state import Course, Instance, State

COMPONENT = "enrol_meta"


def enrol_meta_add_instances(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    if not params["instances"]:
        raise invalid_parameter("No instances specified")
    result = []
    for item in params["instances"]:
        meta = _meta_course(ctx, item["metacourseid"])
        linked = _linked_course(ctx, item["courseid"])
        if linked is None:
            raise invalid_parameter(_meta_msg_course(item["courseid"]))
        try:
            validate_course_context(ctx, linked)
            if not linked.visible:
                ctx.require("moodle/course:viewhiddencourses")
            ctx.require("enrol/meta:selectaslinked")
        except WsError:
            raise invalid_parameter(_meta_msg_course(item["courseid"])) from None
        if _meta_link(state, meta.id, linked.id) is not None:
            result.append({"metacourseid": meta.id, "courseid": item["courseid"], "status": False})
            continue
        group = 0
        if item["creategroup"]:
            if not ctx.can("moodle/course:managegroups"):
                raise invalid_parameter(
                    f"No permission to create group in linked course id = {item['courseid']}."
                )
            group = create_group(ctx, meta.id, f"{linked.fullname} course")
        inst = Instance(
            id=state.next_id("enrol", state.instances), courseid=meta.id, enrol="meta",
            customint1=linked.id, customint2=group,
        )  # fmt: skip
        ctx.txn.dset(state.instances, inst.id, inst)
        ids = state.course_instances.setdefault(meta.id, [])
        ctx.txn.dset(state.course_instances, meta.id, [*ids, inst.id])
        ctx.txn.event("enrol_instance_created")
        meta_sync_instance(ctx, inst)
        result.append({"metacourseid": meta.id, "courseid": item["courseid"], "status": True})
    return result


def enrol_meta_delete_instances(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    if not params["instances"]:
        raise invalid_parameter("No instances specified")
    result = []
    for item in params["instances"]:
        meta = _meta_course(ctx, item["metacourseid"])
        linked = _linked_course(ctx, item["courseid"])
        if linked is None:
            raise invalid_parameter(_meta_msg_course(item["courseid"]))
        inst = _meta_link(state, meta.id, linked.id)
        if inst is not None:
            for userid in [u for (i, u) in list(state.ue) if i == inst.id]:
                unenrol_user(ctx, inst, userid)
            ctx.txn.dset(
                state.course_instances,
                meta.id,
                [i for i in state.course_instances[meta.id] if i != inst.id],
            )
            ctx.txn.ddel(state.instances, inst.id)
            ctx.txn.event("enrol_instance_deleted")
        result.append(
            {"metacourseid": meta.id, "courseid": item["courseid"], "status": inst is not None}
        )
    return result


def _meta_course(ctx: Ctx, courseid: int) -> Course:
    course = ctx.state.courses.get(courseid)
    # enrol_meta/wsinvalidmetacourse, as observed on 4.4 (moodle-ws.md §11).
    message = (
        f"Meta course id = {courseid} does not exist or no permission to add enrolment instance."
    )
    if course is None:
        raise invalid_parameter(message)
    try:
        validate_course_context(ctx, course)
        ctx.require("moodle/course:enrolconfig")
        ctx.require("enrol/meta:config")
    except WsError:
        raise invalid_parameter(message) from None
    return course


def _linked_course(ctx: Ctx, raw_courseid: str) -> Course | None:
    return ctx.state.courses.get(clean_param(raw_courseid, "int"))


def _meta_msg_course(courseid: str) -> str:
    # enrol_meta/wsinvalidcourse: worded like wsinvalidmetacourse (inferred, not observed).
    return f"Course id = {courseid} does not exist or no permission to add meta link."


def _meta_link(state: State, metaid: int, linkedid: int) -> Instance | None:
    return next((i for i in state.instances_of(metaid, "meta") if i.customint1 == linkedid), None)


def functions(at_least: Any) -> list[Function]:
    status = Multiple(
        Single({"metacourseid": Value("int"), "courseid": Value("raw"), "status": Value("bool")})
    )
    add_row = Single(
        {
            "metacourseid": Value("int"),
            "courseid": Value("raw"),
            "creategroup": Value("bool", DEFAULT, False),
        }
    )
    delete_row = Single({"metacourseid": Value("int"), "courseid": Value("raw")})
    return [
        Function(
            "enrol_meta_add_instances",
            Single({"instances": Multiple(add_row, DEFAULT, [])}),
            enrol_meta_add_instances,
            status,
            component=COMPONENT,
        ),
        Function(
            "enrol_meta_delete_instances",
            Single({"instances": Multiple(delete_row, DEFAULT, [])}),
            enrol_meta_delete_instances,
            status,
            component=COMPONENT,
        ),
    ]
