"""cohort/externallib.php: create, search, get cohorts and members, add and delete members
(moodle-ws.md §6, §11). Adding or removing a member runs enrol_cohort's sync at once."""

from __future__ import annotations

from typing import Any, Final

from streams.emulator.external import (
    DEFAULT,
    OPTIONAL,
    Multiple,
    Single,
    Value,
    coding_error,
    invalid_parameter,
    missing_record,
    required_capability,
)
from streams.emulator.functions.base import SYSTEM_CONTEXT, Ctx, Function
from streams.emulator.lib.sync import cohort_add_member, cohort_instances, cohort_remove_member
from streams.emulator.state import Cohort, category_contextid


def _cohort_context_ok(ctx: Ctx, cohort: Cohort) -> None:
    if cohort.contextid != SYSTEM_CONTEXT and cohort.contextid - 100000 not in ctx.state.categories:
        raise invalid_parameter("Invalid context")


def core_cohort_create_cohorts(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state, txn = ctx.state, ctx.txn
    created = []
    for spec in params["cohorts"]:
        ctype, cvalue = spec["categorytype"]["type"], spec["categorytype"]["value"]
        if ctype not in ("idnumber", "id", "system"):
            raise invalid_parameter(f"category type must be id, idnumber or system:{ctype}")
        if ctype == "system":
            contextid = SYSTEM_CONTEXT
        else:
            cat = next(
                (c for c in state.categories.values() if str(getattr(c, ctype)) == cvalue), None
            )
            if cat is None:
                raise invalid_parameter(f"category not exists: category {ctype} = {cvalue}")
            contextid = cat.contextid
        if any(c.idnumber == spec["idnumber"] for c in state.cohorts.values()):
            raise invalid_parameter(f"record already exists: idnumber={spec['idnumber']}")
        ctx.require("moodle/cohort:manage")
        cohort = Cohort(
            id=state.next_id("cohort", state.cohorts),
            idnumber=spec["idnumber"],
            name=spec["name"],
            contextid=contextid,
            description=spec.get("description", ""),
            descriptionformat=spec["descriptionformat"],
            visible=spec.get("visible", True),
        )
        txn.dset(state.cohorts, cohort.id, cohort)
        txn.dset(state.cohort_members, cohort.id, set())
        txn.event("cohort_created")
        created.append(_cohort_out(cohort))
    return created


def _cohort_out(cohort: Cohort) -> dict[str, Any]:
    return {
        "id": cohort.id,
        "name": cohort.name,
        "idnumber": cohort.idnumber,
        "description": cohort.description,
        "descriptionformat": cohort.descriptionformat,
        "visible": cohort.visible,
        "theme": "",
    }


def core_cohort_search_cohorts(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    context = params["context"]
    if context["contextid"]:
        contextid = context["contextid"]
        if contextid != SYSTEM_CONTEXT and contextid - 100000 not in state.categories:
            raise missing_record("context", "id = ?", contextid)
    elif context["contextlevel"]:
        level = context["contextlevel"]
        if level == "system":
            contextid = SYSTEM_CONTEXT
        elif level == "coursecat" and context["instanceid"] in state.categories:
            contextid = category_contextid(context["instanceid"])
        elif level == "coursecat":
            raise missing_record("course_categories", "id = ?", context["instanceid"])
        else:
            raise invalid_parameter(f"Invalid context level = {level}")
    else:
        raise invalid_parameter(
            "Missing parameters, please provide either context level with instance id or contextid"
        )
    if not ctx.can("moodle/cohort:manage"):
        ctx.require("moodle/cohort:view")
    includes = params["includes"]
    if includes == "self":
        scope = {contextid}
    elif includes == "parents":
        scope = {contextid, SYSTEM_CONTEXT}
    elif includes == "all":
        scope = None
    else:
        raise coding_error("Invalid parameter value for 'includes'.")
    query = params["query"].lower()
    matches = sorted(
        (
            c
            for c in state.cohorts.values()
            if (scope is None or c.contextid in scope)
            and (
                query in c.name.lower()
                or query in c.idnumber.lower()
                or query in c.description.lower()
            )
        ),
        key=lambda c: (c.name, c.id),
    )
    start, num = params["limitfrom"], params["limitnum"]
    page = matches[start : start + num] if num else matches[start:]
    return {"cohorts": [_cohort_out(c) for c in page]}


def core_cohort_add_cohort_members(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    warnings: list[dict[str, str]] = []
    for member in params["members"]:
        ctype, cvalue = member["cohorttype"]["type"], member["cohorttype"]["value"]
        utype, uvalue = member["usertype"]["type"], member["usertype"]["value"]
        if ctype not in ("id", "idnumber"):
            warnings.append(
                {"warningcode": "1", "message": f"invalid parameter: cohortype={ctype}"}
            )
            continue
        if utype not in ("id", "username"):
            warnings.append({"warningcode": "1", "message": f"invalid parameter: usertype={utype}"})
            continue
        cohort = next((c for c in state.cohorts.values() if str(getattr(c, ctype)) == cvalue), None)
        if cohort is None:
            warnings.append({"warningcode": "2", "message": f"cohort {ctype}={cvalue} not exists"})
            continue
        user = next(
            (u for u in state.users.values() if str(getattr(u, utype)) == uvalue and not u.deleted),
            None,
        )
        if user is None:
            warnings.append({"warningcode": "2", "message": f"user {utype}={uvalue} not exists"})
            continue
        if user.id in state.cohort_members.get(cohort.id, set()):
            warnings.append(
                {
                    "warningcode": "3",
                    "message": f"record already exists: cohort({ctype}={cvalue} {utype}={uvalue})",
                }
            )
            continue
        if not (ctx.can("moodle/cohort:manage") or ctx.can("moodle/cohort:assign")):
            raise required_capability("moodle/cohort:assign")
        cohort_add_member(ctx, cohort.id, user.id)
    return {"warnings": warnings}


def core_cohort_delete_cohort_members(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for member in params["members"]:
        cohort = state.cohorts.get(member["cohortid"])
        if cohort is None:
            raise missing_record("cohort", "id = ?", member["cohortid"])
        user = state.users.get(member["userid"])
        if user is None or user.deleted:
            raise missing_record("user", "id = ? AND deleted = ?", member["userid"], 0)
        _cohort_context_ok(ctx, cohort)
        if not (ctx.can("moodle/cohort:manage") or ctx.can("moodle/cohort:assign")):
            raise required_capability("moodle/cohort:assign")
        cohort_remove_member(ctx, cohort.id, user.id)


def _require_view(ctx: Ctx) -> None:
    if not (ctx.can("moodle/cohort:manage") or ctx.can("moodle/cohort:view")):
        raise required_capability("moodle/cohort:view")


def core_cohort_get_cohorts(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cohort when ``cohortids`` is empty; a missing id is ``invalidrecord``."""
    state = ctx.state
    ids = params["cohortids"] or sorted(state.cohorts)
    result = []
    for cohortid in ids:
        cohort = state.cohorts.get(cohortid)
        if cohort is None:
            raise missing_record("cohort", "id = ?", cohortid)
        _cohort_context_ok(ctx, cohort)
        _require_view(ctx)
        result.append(_cohort_out(cohort))
    return result


def core_cohort_get_cohort_members(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    result = []
    for cohortid in params["cohortids"]:
        cohort = state.cohorts.get(cohortid)
        if cohort is None:
            raise missing_record("cohort", "id = ?", cohortid)
        _cohort_context_ok(ctx, cohort)
        _require_view(ctx)
        members = sorted(state.cohort_members.get(cohortid, ()))
        result.append({"cohortid": cohortid, "userids": members})
    return result


def core_cohort_delete_cohorts(ctx: Ctx, params: dict[str, Any]) -> None:
    """cohort_delete_cohort(): members removed (enrol_cohort unenrols them), then the cohort;
    enrol_cohort's observer of cohort_deleted removes the instances that used it."""
    state, txn = ctx.state, ctx.txn
    for cohortid in params["cohortids"]:
        cohort = state.cohorts.get(cohortid)
        if cohort is None:
            raise missing_record("cohort", "id = ?", cohortid)
        _cohort_context_ok(ctx, cohort)
        ctx.require("moodle/cohort:manage")
        for userid in sorted(state.cohort_members.get(cohortid, set())):
            cohort_remove_member(ctx, cohortid, userid)
        for inst in cohort_instances(state, cohortid):
            txn.dset(
                state.course_instances,
                inst.courseid,
                [i for i in state.course_instances[inst.courseid] if i != inst.id],
            )
            txn.ddel(state.instances, inst.id)
        txn.ddel(state.cohort_members, cohortid)
        txn.ddel(state.cohorts, cohortid)
        txn.event("cohort_deleted")


COHORT: Final = Single(
    {
        "id": Value("int"), "name": Value("raw"), "idnumber": Value("raw"),
        "description": Value("raw"), "descriptionformat": Value("int"),
        "visible": Value("bool"), "theme": Value("plugin", OPTIONAL),
        "customfields": Multiple(
            Single({"name": Value("raw"), "shortname": Value("raw"), "type": Value("component"),
                    "valueraw": Value("raw"), "value": Value("raw")}), OPTIONAL),
    }
)  # fmt: skip

_WARNINGS: Final = Multiple(
    Single({"item": Value("text", OPTIONAL), "itemid": Value("int", OPTIONAL),
            "warningcode": Value("alphanum"), "message": Value("text")}),
    OPTIONAL,
)  # fmt: skip


def _members_params(row: dict[str, Any]) -> Single:
    return Single({"members": Multiple(Single(row))})


def functions(at_least: Any) -> list[Function]:
    type_value = {"type": Value("alphanumext"), "value": Value("raw")}
    new_cohort = Single(
        {
            "categorytype": Single({"type": Value("text"), "value": Value("raw")}),
            "name": Value("raw"), "idnumber": Value("raw"),
            "description": Value("raw", OPTIONAL), "descriptionformat": Value("int", DEFAULT, 1),
            "visible": Value("bool", OPTIONAL), "theme": Value("theme", OPTIONAL),
        }
    )  # fmt: skip
    search = Single(
        {
            "query": Value("raw"),
            "context": Single(
                {
                    "contextid": Value("int", DEFAULT, 0),
                    "contextlevel": Value("alpha", DEFAULT, ""),
                    "instanceid": Value("int", DEFAULT, 0),
                }
            ),
            "includes": Value("alpha", DEFAULT, "parents"),
            "limitfrom": Value("int", DEFAULT, 0),
            "limitnum": Value("int", DEFAULT, 25),
        }
    )
    return [
        Function(
            "core_cohort_create_cohorts",
            Single({"cohorts": Multiple(new_cohort)}),
            core_cohort_create_cohorts,
            Multiple(COHORT),
        ),
        Function(
            "core_cohort_search_cohorts",
            search,
            core_cohort_search_cohorts,
            Single({"cohorts": Multiple(COHORT)}),
        ),
        Function(
            "core_cohort_delete_cohorts",
            Single({"cohortids": Multiple(Value("int"))}),
            core_cohort_delete_cohorts,
        ),
        Function(
            "core_cohort_get_cohorts",
            Single({"cohortids": Multiple(Value("int"), DEFAULT, [])}),
            core_cohort_get_cohorts,
            Multiple(COHORT),
        ),
        Function(
            "core_cohort_get_cohort_members",
            Single({"cohortids": Multiple(Value("int"))}),
            core_cohort_get_cohort_members,
            Multiple(Single({"cohortid": Value("int"), "userids": Multiple(Value("int"))})),
        ),
        Function(
            "core_cohort_add_cohort_members",
            _members_params({"cohorttype": Single(type_value), "usertype": Single(type_value)}),
            core_cohort_add_cohort_members,
            Single({"warnings": _WARNINGS}),
        ),
        Function(
            "core_cohort_delete_cohort_members",
            _members_params({"cohortid": Value("int"), "userid": Value("int")}),
            core_cohort_delete_cohort_members,
        ),
    ]
