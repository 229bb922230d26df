"""enrol/externallib.php: core_enrol_get_enrolled_users, core_enrol_get_users_courses,
core_enrol_get_course_enrolment_methods, and core_role_assign_roles / core_role_unassign_roles
(class core_role_external lives in the same file in Moodle)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from streams.emulator.external import (
    DEFAULT,
    OPTIONAL,
    Desc,
    Multiple,
    Single,
    Value,
    WsError,
    clean_param,
    coding_error,
    invalid_parameter,
    missing_record,
    moodle_exception,
)
from streams.emulator.functions.base import (
    SYSTEM_CONTEXT,
    Ctx,
    Function,
    assignable_roles,
    course_context_error,
    validate_course_context,
)
from streams.emulator.functions.course import course_image
from streams.emulator.lib.userlib import user_details
from streams.emulator.state import ENROL_INSTANCE_ENABLED, Course, category_contextid

# -- core_enrol_get_enrolled_users ------------------------------------------------------------


def core_enrol_get_enrolled_users(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    opts = _enrolled_options(params["options"])
    courseid = params["courseid"]
    course = state.courses.get(courseid)
    if course is None:
        raise missing_record("course", "id = ?", courseid)
    try:
        validate_course_context(ctx, course)
    except WsError as exc:
        raise course_context_error(courseid, exc) from None
    ctx.require("moodle/course:viewparticipants")
    if opts["withcapability"]:
        ctx.require("moodle/role:review")
    if opts["onlyactive"] or opts["onlysuspended"]:
        ctx.require("moodle/course:enrolreview")
    if opts["onlyactive"] and opts["onlysuspended"]:
        raise coding_error(
            "Both onlyactive and onlysuspended are set, this is probably not what you want!"
        )
    now = state.now()
    selected: list[int] = []
    for uid in sorted(state.course_users.get(courseid, {})):
        user = state.users.get(uid)
        if user is None or user.deleted:
            continue
        if opts["groupid"] and uid not in state.group_members.get(opts["groupid"], {}):
            continue
        filtered = opts["onlyactive"] or opts["onlysuspended"]
        if filtered and state.is_active(courseid, uid, now) != bool(opts["onlyactive"]):
            continue
        selected.append(uid)
    if opts["sortdirection"] == "DESC":
        selected.reverse()
    start = opts["limitfrom"]
    end = start + opts["limitnumber"] if opts["limitnumber"] else None
    fields = opts["userfields"]
    return [user_details(ctx, state.users[uid], course, fields) for uid in selected[start:end]]


def _enrolled_options(options: Iterable[dict[str, Any]]) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "withcapability": "", "groupid": 0, "onlyactive": False, "onlysuspended": False,
        "userfields": None, "limitfrom": 0, "limitnumber": 0, "sortdirection": "ASC",
    }  # fmt: skip
    for option in options:
        name, value = option["name"], option["value"]
        if name == "withcapability":
            opts[name] = value
        elif name in ("groupid", "limitfrom", "limitnumber"):
            opts[name] = clean_param(value, "int")
        elif name in ("onlyactive", "onlysuspended"):
            opts[name] = value not in ("", "0")  # PHP !empty()
        elif name == "userfields":
            opts[name] = [clean_param(f, "alphanumext") for f in value.split(",")]
        elif name == "sortby":
            allowed = ("id", "firstname", "lastname", "siteorder")
            if value not in allowed:
                raise invalid_parameter(
                    f"Invalid value for sortby parameter (value: {value}),allowed values are: "
                    + ",".join(allowed)
                )
        elif name == "sortdirection":
            direction = value.upper()
            if direction not in ("ASC", "DESC"):
                raise invalid_parameter(
                    f"Invalid value for sortdirection parameter (value: {direction}),"
                    "allowed values are: ASC,DESC"
                )
            opts[name] = direction
    return opts


def _opt(type_: str) -> Value:
    return Value(type_, OPTIONAL)


ENROLLED_USER: Final = Single(
    {
        "id": Value("int"), "username": _opt("raw"), "firstname": _opt("notags"),
        "lastname": _opt("notags"), "initials": _opt("notags"), "fullname": Value("notags"),
        "email": _opt("text"), "address": _opt("text"), "phone1": _opt("notags"),
        "phone2": _opt("notags"), "department": _opt("text"), "institution": _opt("text"),
        "idnumber": _opt("raw"), "interests": _opt("text"), "firstaccess": _opt("int"),
        "lastaccess": _opt("int"), "lastcourseaccess": _opt("int"), "description": _opt("raw"),
        "descriptionformat": _opt("int"), "city": _opt("notags"), "country": _opt("alpha"),
        "profileimageurlsmall": _opt("url"), "profileimageurl": _opt("url"),
        "customfields": Multiple(
            Single({"type": Value("alphanumext"), "value": Value("raw"), "name": Value("raw"),
                    "shortname": Value("raw")}), OPTIONAL),
        "groups": Multiple(
            Single({"id": Value("int"), "name": Value("raw"), "description": Value("raw"),
                    "descriptionformat": Value("int")}), OPTIONAL),
        "roles": Multiple(
            Single({"roleid": Value("int"), "name": Value("raw"), "shortname": Value("alpha"),
                    "sortorder": Value("int")}), OPTIONAL),
        "preferences": Multiple(Single({"name": Value("raw"), "value": Value("raw")}), OPTIONAL),
        "enrolledcourses": Multiple(
            Single({"id": Value("int"), "fullname": Value("raw"), "shortname": Value("raw")}),
            OPTIONAL),
    }
)  # fmt: skip


# -- core_enrol_get_users_courses -------------------------------------------------------------


def core_enrol_get_users_courses(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Courses where the user has an *active* enrolment and the caller may see participants;
    the answer carries the course idnumber (moodle-ws.md §11)."""
    state = ctx.state
    userid = params["userid"]
    user = state.users.get(userid)
    if user is None or user.deleted:
        raise missing_record("user", "id = ? AND deleted = ?", userid, 0)
    now = state.now()
    courses = sorted(
        (c for c in state.courses.values() if state.is_active(c.id, userid, now)),
        key=lambda c: (not c.visible, c.sortorder),
    )
    result = []
    for course in courses:
        try:
            validate_course_context(ctx, course)
        except WsError:
            continue
        if userid != ctx.user.id and not ctx.can("moodle/course:viewparticipants"):
            continue
        row: dict[str, Any] = {
            "id": course.id, "shortname": course.shortname, "fullname": course.fullname,
            "displayname": course.fullname, "idnumber": course.idnumber,
            "visible": int(course.visible), "summary": course.summary, "summaryformat": 1,
            "format": course.format, "courseimage": course_image(ctx, course), "showgrades": True,
            "lang": "", "enablecompletion": False, "completionhascriteria": False,
            "completionusertracked": False, "category": course.category, "progress": None,
            "completed": False, "startdate": course.startdate, "enddate": course.enddate,
            "marker": 0, "lastaccess": None, "isfavourite": False, "hidden": False,
            "overviewfiles": [], "showactivitydates": True, "showcompletionconditions": True,
            "timemodified": 0,
        }  # fmt: skip
        if params["returnusercount"]:
            row["enrolledusercount"] = sum(
                1
                for u in state.course_users.get(course.id, {})
                if state.is_active(course.id, u, now)
            )
        result.append(row)
    return result


USERS_COURSE: Final = Single(
    {
        "id": Value("int"), "shortname": Value("raw"), "fullname": Value("raw"),
        "displayname": _opt("raw"), "enrolledusercount": _opt("int"), "idnumber": Value("raw"),
        "visible": Value("int"), "summary": _opt("raw"), "summaryformat": _opt("int"),
        "format": _opt("plugin"), "courseimage": _opt("url"), "showgrades": _opt("bool"),
        "lang": _opt("lang"), "enablecompletion": _opt("bool"),
        "completionhascriteria": _opt("bool"), "completionusertracked": _opt("bool"),
        "category": _opt("int"), "progress": _opt("float"), "completed": _opt("bool"),
        "startdate": _opt("int"), "enddate": _opt("int"), "marker": _opt("int"),
        "lastaccess": _opt("int"), "isfavourite": _opt("bool"), "hidden": _opt("bool"),
        "overviewfiles": Multiple(
            Single({"filename": _opt("file"), "filepath": _opt("path"),
                    "filesize": _opt("int"), "fileurl": _opt("url")}), OPTIONAL),
        "showactivitydates": Value("bool"), "showcompletionconditions": Value("bool"),
        "timemodified": _opt("int"),
    }
)  # fmt: skip


# -- core_enrol_get_course_enrolment_methods --------------------------------------------------

_ENROL_INFO: Final = {
    "self": "enrol_self_get_instance_info",
    "guest": "enrol_guest_get_instance_info",
}


def core_enrol_get_course_enrolment_methods(
    ctx: Ctx, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Only enabled instances whose plugin implements get_enrol_info(): in 4.4 self and guest.
    Manual, database, cohort and meta instances are never listed (moodle-ws.md §4), so this
    cannot tell whether a course has a usable manual instance."""
    state = ctx.state
    course = state.courses.get(params["courseid"])
    if course is None:
        raise missing_record("course", "id = ?", params["courseid"])
    if not course.visible and not (
        ctx.can("moodle/course:viewhiddencourses") or ctx.can("moodle/course:update")
    ):
        raise moodle_exception("coursehidden", "This course is currently unavailable to students")
    result = []
    for inst in state.instances_of(course.id):
        if inst.status != ENROL_INSTANCE_ENABLED or inst.enrol not in _ENROL_INFO:
            continue
        name = "Self enrolment (Student)" if inst.enrol == "self" else "Guest access"
        result.append(
            {"id": inst.id, "courseid": course.id, "type": inst.enrol, "name": name,
             "status": True, "wsfunction": _ENROL_INFO[inst.enrol]}
        )  # fmt: skip
    return result


ENROL_METHOD: Final = Single(
    {"id": Value("int"), "courseid": Value("int"), "type": Value("plugin"), "name": Value("raw"),
     "status": Value("raw"), "wsfunction": _opt("alphanumext")}
)  # fmt: skip


# -- core_role_assign_roles / core_role_unassign_roles -----------------------------------------


def _context_course(ctx: Ctx, item: dict[str, Any]) -> Course | None:
    """external_api::get_context_from_params for the course contexts the emulator models."""
    state = ctx.state
    if item.get("contextid"):
        return next((c for c in state.courses.values() if c.contextid == item["contextid"]), None)
    if item.get("contextlevel") and "instanceid" in item:
        level = item["contextlevel"]
        if level not in ("system", "user", "coursecat", "course", "module", "block"):
            raise invalid_parameter(f"Invalid context level = {level}")
        return state.courses.get(item["instanceid"]) if level == "course" else None
    raise invalid_parameter(
        "Missing parameters, please provide either context level with instance id or contextid"
    )


def _known_context(ctx: Ctx, item: dict[str, Any]) -> bool:
    cid = item.get("contextid", 0)
    return cid == SYSTEM_CONTEXT or any(category_contextid(c) == cid for c in ctx.state.categories)


def core_role_assign_roles(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for item in params["assignments"]:
        before = ctx.txn.size
        course = _context_course(ctx, item)
        if course is None:
            if _known_context(ctx, item):
                raise invalid_parameter("The emulator models role assignments in courses only")
            raise invalid_parameter("Context does not exist")
        validate_course_context(ctx, course)
        ctx.require("moodle/role:assign")
        if item["roleid"] not in assignable_roles(ctx):
            raise invalid_parameter(
                f"Can not assign roleid={item['roleid']} in contextid={item.get('contextid', '')}"
            )
        user = state.users.get(item["userid"])
        if user is None or user.deleted:
            raise missing_record("user", "id = ?", item["userid"])
        state.role_assign(ctx.txn, course.id, user.id, (item["roleid"], "", 0))
        ctx.count_row(before)


def core_role_unassign_roles(ctx: Ctx, params: dict[str, Any]) -> None:
    """role_unassign(roleid, userid, contextid): only the manual assignment (component '')
    goes; roles held through an enrol plugin (cohort, meta, database) stay."""
    state = ctx.state
    for item in params["unassignments"]:
        before = ctx.txn.size
        course = _context_course(ctx, item)
        if course is None:
            if _known_context(ctx, item):
                raise invalid_parameter("The emulator models role assignments in courses only")
            raise invalid_parameter("Context does not exist")
        validate_course_context(ctx, course)
        ctx.require("moodle/role:assign")
        if item["roleid"] not in assignable_roles(ctx):
            raise invalid_parameter(
                f"Can not unassign roleid={item['roleid']} in contextid={item.get('contextid', '')}"
            )
        held = state.ra.get((course.id, item["userid"]), set())
        ra = (item["roleid"], "", 0)
        if ra in held:
            ctx.txn.sdiscard(held, ra)
            ctx.txn.event("role_unassigned")
        ctx.count_row(before)


def _role_row() -> Single:
    return Single(
        {
            "roleid": Value("int"),
            "userid": Value("int"),
            "contextid": Value("int", OPTIONAL),
            "contextlevel": Value("alpha", OPTIONAL),
            "instanceid": Value("int", OPTIONAL),
        }
    )


def functions(at_least: Any) -> list[Function]:
    options: Desc = Multiple(
        Single({"name": Value("alphanumext"), "value": Value("raw")}), DEFAULT, []
    )
    return [
        Function(
            "core_enrol_get_enrolled_users",
            Single({"courseid": Value("int"), "options": options}),
            core_enrol_get_enrolled_users,
            Multiple(ENROLLED_USER),
        ),
        Function(
            "core_enrol_get_users_courses",
            Single({"userid": Value("int"), "returnusercount": Value("bool", DEFAULT, True)}),
            core_enrol_get_users_courses,
            Multiple(USERS_COURSE),
        ),
        Function(
            "core_enrol_get_course_enrolment_methods",
            Single({"courseid": Value("int")}),
            core_enrol_get_course_enrolment_methods,
            Multiple(ENROL_METHOD),
        ),
        Function(
            "core_role_assign_roles",
            Single({"assignments": Multiple(_role_row())}),
            core_role_assign_roles,
        ),
        Function(
            "core_role_unassign_roles",
            Single({"unassignments": Multiple(_role_row())}),
            core_role_unassign_roles,
        ),
    ]
