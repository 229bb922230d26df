"""The emulated web-service functions, each following the Moodle code path cited in moodle-ws.md.

Every function gets a :class:`Ctx` (state, token, transaction) and the validated parameters,
and either returns the value Moodle would return or raises :class:`WsError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
    require_login,
    required_capability,
)
from streams.emulator.state import (
    ENROL_EXT_REMOVED_SUSPENDNOROLES,
    ENROL_EXT_REMOVED_UNENROL,
    ENROL_INSTANCE_ENABLED,
    ENROL_USER_ACTIVE,
    ENROL_USER_SUSPENDED,
    RELEASES,
    Cohort,
    Course,
    Group,
    Instance,
    State,
    Token,
    Txn,
    User,
    UserEnrolment,
    category_contextid,
)

SYSTEM_CONTEXT: Final = 1


@dataclass
class Ctx:
    state: State
    token: Token
    txn: Txn = field(default_factory=Txn)
    touched_courses: set[int] = field(default_factory=set)

    @property
    def site_at_least(self) -> Callable[[str], bool]:
        return self.state.site.at_least

    def require(self, capability: str) -> None:
        if not self.token.can(capability):
            raise required_capability(capability)


@dataclass(frozen=True)
class Function:
    name: str
    params: Single
    impl: Callable[[Ctx, dict[str, Any]], Any]
    capabilities: str = ""
    returns_null: bool = False


# ------------------------------------------------------------------------------------------------
# Shared course helpers


def _validate_course_context(ctx: Ctx, course: Course) -> None:
    """validate_context() → require_login(): the WS user must be able to enter the course."""
    state = ctx.state
    can_enter = ctx.token.can("moodle/course:view") or state.is_active(
        course.id, ctx.token.userid, state.now()
    )
    if not can_enter:
        raise require_login("Not enrolled")
    if not course.visible and not ctx.token.can("moodle/course:viewhiddencourses"):
        raise require_login("Course is hidden")


def _wsnoinstance(ctx: Ctx, courseid: int) -> WsError:
    # ≤4.4 passed the parameters as the *link* argument, leaving the placeholder unexpanded.
    shown = "{$a->courseid}" if not ctx.site_at_least("4.5") else str(courseid)
    return moodle_exception(
        "wsnoinstance",
        "Manual enrolment plugin instance doesn't exist or is disabled for the course "
        f"(id = {shown})",
    )


def _require_active_user(user: User) -> None:
    if user.deleted:
        raise moodle_exception("userdeleted", "User account has been deleted")
    if not user.confirmed:
        raise moodle_exception("usernotconfirmed", f"Could not confirm {user.username}")
    if user.username == "guest":
        raise moodle_exception("guestsarenotallowed", "The guest user is not allowed to do this")


def _assignable_roles(ctx: Ctx) -> set[int]:
    if not ctx.token.can("moodle/role:assign"):
        return set()
    if "*" in ctx.token.capabilities:
        return set(ctx.state.roles)
    return {r for r in ctx.token.assignable_roles if r in ctx.state.roles}


# ------------------------------------------------------------------------------------------------
# enrol_plugin::enrol_user / update_user_enrol / unenrol_user (lib/enrollib.php)


def enrol_user(
    ctx: Ctx,
    inst: Instance,
    userid: int,
    roleid: int,
    timestart: int,
    timeend: int,
    status: int | None,
) -> None:
    state, txn = ctx.state, ctx.txn
    ue = state.ue.get((inst.id, userid))
    created = ue is None
    if ue is not None:
        if (
            ue.timestart != timestart
            or ue.timeend != timeend
            or (status is not None and ue.status != status)
        ):
            update_user_enrol(ctx, ue, status, timestart, timeend)
    else:
        now = state.now()
        new = UserEnrolment(
            inst.id,
            userid,
            ENROL_USER_ACTIVE if status is None else status,
            timestart,
            timeend,
            now,
            now,
        )
        state.put_ue(txn, new, inst.courseid)
        txn.event("user_enrolment_created")
    if roleid:
        if not ctx.site_at_least("5.1"):
            user = state.users.get(userid)
            if user is None or user.deleted:
                raise coding_error("User ID does not exist or is deleted!")
        component, itemid = ("", 0) if inst.enrol == "manual" else (f"enrol_{inst.enrol}", inst.id)
        state.role_assign(txn, inst.courseid, userid, (roleid, component, itemid))
    key = (inst.courseid, userid)
    if state.site.recovergradesdefault and key not in state.grades and key in state.grade_history:
        txn.dset(state.grades, key, state.grade_history[key])
    # The after_user_enrolled hook (newer than 4.4dev) sends the welcome message on every call.
    if inst.enrol == "manual" and inst.customint1 and (created or ctx.site_at_least("4.5")):
        txn.event("welcome_message")
        wm = state.welcome_messages
        wkey = (inst.id, userid)
        txn.dset(wm, wkey, wm.get(wkey, 0) + 1)
    ctx.touched_courses.add(inst.courseid)


def update_user_enrol(
    ctx: Ctx, ue: UserEnrolment, status: int | None, timestart: int | None, timeend: int | None
) -> None:
    txn = ctx.txn
    modified = False
    for name, value in (("status", status), ("timestart", timestart), ("timeend", timeend)):
        if value is not None and getattr(ue, name) != value:
            txn.setattr(ue, name, value)
            modified = True
    if modified:
        txn.setattr(ue, "timemodified", ctx.state.now())
        txn.event("user_enrolment_updated")
        ctx.touched_courses.add(ctx.state.instances[ue.instanceid].courseid)


def unenrol_user(ctx: Ctx, inst: Instance, userid: int) -> None:
    state, txn = ctx.state, ctx.txn
    if (inst.id, userid) not in state.ue:
        return  # "weird, user not enrolled": silent
    courseid = inst.courseid
    component = f"enrol_{inst.enrol}"
    for group in [g for g in state.groups.values() if g.courseid == courseid]:
        members = state.group_members.get(group.id, {})
        if members.get(userid) == (component, inst.id):
            txn.ddel(members, userid)
    state.role_unassign_all(txn, courseid, userid, component, inst.id)
    state.drop_ue(txn, inst.id, userid, courseid)
    if not state.is_enrolled(courseid, userid):
        # Last enrolment in the course: roles, groups, grades and lastaccess go.
        state.role_unassign_all(txn, courseid, userid)
        for group in [g for g in state.groups.values() if g.courseid == courseid]:
            txn.ddel(state.group_members.get(group.id, {}), userid)
        key = (courseid, userid)
        if key in state.grades:
            txn.dset(state.grade_history, key, state.grades[key])
            txn.ddel(state.grades, key)
            txn.event("grades_deleted")
    txn.event("user_enrolment_deleted")
    ctx.touched_courses.add(courseid)


# ------------------------------------------------------------------------------------------------
# enrol_manual_enrol_users / enrol_manual_unenrol_users


def enrol_manual_enrol_users(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for item in params["enrolments"]:
        courseid, userid, roleid = item["courseid"], item["userid"], item["roleid"]
        course = state.courses.get(courseid)
        if course is None:
            raise invalid_parameter("Context does not exist")
        _validate_course_context(ctx, course)
        ctx.require("enrol/manual:enrol")
        if ctx.site_at_least("5.1"):
            user = state.users.get(userid)
            if user is None:
                raise missing_record("user", "id = ?", userid)
            _require_active_user(user)
        if roleid not in _assignable_roles(ctx):
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
            raise _wsnoinstance(ctx, courseid)
        status = ENROL_USER_SUSPENDED if item.get("suspend") else ENROL_USER_ACTIVE
        enrol_user(
            ctx, inst, userid, roleid, item.get("timestart", 0), item.get("timeend", 0), status
        )


def enrol_manual_unenrol_users(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for item in params["enrolments"]:
        courseid, userid = item["courseid"], item["userid"]
        course = state.courses.get(courseid)
        if course is None:
            raise missing_record("course", "id = ?", courseid)
        _validate_course_context(ctx, course)
        ctx.require("enrol/manual:unenrol")
        inst = state.manual_instance(courseid)  # enabled or not: unlike enrol
        if inst is None:
            raise _wsnoinstance(ctx, courseid)
        user = state.users.get(userid)
        if ctx.site_at_least("5.1"):
            if user is None:
                raise missing_record("user", "id = ?", userid)
            _require_active_user(user)
        elif user is None:
            raise invalid_parameter(f"User id not exist: {userid}")
        unenrol_user(ctx, inst, userid)


def _enrol_params() -> Single:
    row = {
        "roleid": Value("int"),
        "userid": Value("int"),
        "courseid": Value("int"),
        "timestart": Value("int", OPTIONAL),
        "timeend": Value("int", OPTIONAL),
        "suspend": Value("int", OPTIONAL),
    }
    return Single({"enrolments": Multiple(Single(row))})


def _unenrol_params(with_roleid: bool) -> Single:
    row: dict[str, Desc] = {"userid": Value("int"), "courseid": Value("int")}
    if with_roleid:
        row["roleid"] = Value("int", OPTIONAL)
    return Single({"enrolments": Multiple(Single(row))})


# ------------------------------------------------------------------------------------------------
# core_enrol_get_enrolled_users


_ENROLLED_USER_FIELDS: Final = (
    "id", "username", "firstname", "lastname", "fullname", "email", "idnumber", "firstaccess",
    "lastaccess", "lastcourseaccess", "description", "descriptionformat", "profileimageurlsmall",
    "profileimageurl", "groups", "roles", "enrolledcourses", "initials",
)  # fmt: skip


def core_enrol_get_enrolled_users(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    state = ctx.state
    opts = _enrolled_options(params["options"])
    courseid = params["courseid"]
    course = state.courses.get(courseid)
    if course is None:
        raise missing_record("course", "id = ?", courseid)
    try:
        _validate_course_context(ctx, course)
    except WsError as exc:
        raise moodle_exception(
            "errorcoursecontextnotvalid",
            f"You cannot execute functions in the course context (course id:{courseid}). "
            f"The context error message was: {exc.message}",
        ) from None
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
    userids = sorted(state.course_users.get(courseid, {}))
    selected: list[int] = []
    for uid in userids:
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
    return [_user_details(ctx, state.users[uid], course, fields) for uid in selected[start:end]]


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


def _user_details(
    ctx: Ctx, user: User, course: Course | None, fields: list[str] | None
) -> dict[str, Any]:
    state, token = ctx.state, ctx.token
    wanted = set(_ENROLLED_USER_FIELDS if fields is None else [*fields, "id", "fullname"])
    if fields is not None:
        for f in fields:
            if f not in _ENROLLED_USER_FIELDS:
                raise moodle_exception("invaliduserfield", f"The user field '{f}' is invalid")
    identity = set(state.site.showuseridentity)
    details: dict[str, Any] = {"id": user.id}
    if token.can("moodle/user:viewalldetails"):
        details["username"] = user.username
    details["firstname"] = user.firstname
    details["lastname"] = user.lastname
    details["fullname"] = f"{user.firstname} {user.lastname}"
    if user.email and ("email" in identity or token.can("moodle/user:viewalldetails")):
        details["email"] = user.email
    if user.idnumber and ("idnumber" in identity or token.can("moodle/user:viewalldetails")):
        details["idnumber"] = user.idnumber
    if course is None and token.can("moodle/user:update"):
        details.update(auth=user.auth, suspended=user.suspended, confirmed=user.confirmed)
    base = state.site.siteurl
    details["profileimageurlsmall"] = f"{base}/theme/image.php/boost/core/1/u/f2"
    details["profileimageurl"] = f"{base}/theme/image.php/boost/core/1/u/f1"
    if course is not None:
        details["groups"] = [
            {"id": g.id, "name": g.name, "description": g.description, "descriptionformat": 1}
            for g in state.user_groups(course.id, user.id)
        ]
        details["roles"] = [
            {"roleid": r.id, "name": r.name, "shortname": r.shortname, "sortorder": r.sortorder}
            for r in state.user_roles(course.id, user.id)
        ]
        now = state.now()
        details["enrolledcourses"] = [
            {"id": c.id, "fullname": c.fullname, "shortname": c.shortname}
            for c in state.courses.values()
            if state.is_active(c.id, user.id, now)
        ]
    return {k: v for k, v in details.items() if k in wanted}


# ------------------------------------------------------------------------------------------------
# core_user_get_users_by_field / core_course_get_courses_by_field


_USER_FIELD_TYPES: Final = {
    "id": "int",
    "idnumber": "raw",
    "username": "username",
    "email": "rawtrimmed",
}


def core_user_get_users_by_field(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    field_name = params["field"]
    if field_name not in _USER_FIELD_TYPES:
        raise coding_error("invalid field parameter")
    cleaned_values: list[str] = []
    for value in params["values"]:
        cleaned = clean_param(value, _USER_FIELD_TYPES[field_name])
        if str(cleaned) != value:
            raise invalid_parameter(
                f"The field '{field_name}' value is invalid: {value}(cleaned value: {cleaned})"
            )
        cleaned_values.append(str(cleaned))
    wanted = set(cleaned_values)
    found = sorted(
        (u for u in ctx.state.users.values() if str(getattr(u, field_name)) in wanted),
        key=lambda u: u.id,
    )
    result = []
    for user in found:
        if user.deleted:
            continue
        details = _user_details(ctx, user, None, None)
        if details.get(field_name):  # the searched field must be visible to the caller
            result.append(details)
    return result


def core_course_get_courses_by_field(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    field_name, value = params["field"], params["value"]
    courses: list[Course]
    if field_name == "":
        courses = list(state.courses.values())
    elif field_name in ("id", "category"):
        wanted_int = clean_param(value, "int")
        attr = "id" if field_name == "id" else "category"
        courses = [c for c in state.courses.values() if getattr(c, attr) == wanted_int]
    elif field_name == "ids":
        ids = [int(i) for i in clean_param(value, "sequence").split(",") if i]
        if any(i not in state.courses for i in ids):
            # Moodle bug observed on 4.4: a missing id dereferences null.
            raise WsError("Error", None, 'Attempt to assign property "contextvalidated" on null')
        courses = [state.courses[i] for i in sorted(set(ids))]
    elif field_name in ("shortname", "idnumber"):
        courses = [c for c in state.courses.values() if getattr(c, field_name) == value]
    else:
        raise invalid_parameter("Invalid field name")
    token = ctx.token
    visible = [
        c
        for c in courses
        if c.visible
        or token.can("moodle/course:viewhiddencourses")
        or token.can("moodle/course:update")
    ]
    return {"courses": [_course_info(ctx, c) for c in visible], "warnings": []}


def _course_info(ctx: Ctx, course: Course) -> dict[str, Any]:
    state, token = ctx.state, ctx.token
    category = state.categories.get(course.category)
    info: dict[str, Any] = {
        "id": course.id,
        "fullname": course.fullname,
        "displayname": course.fullname,
        "shortname": course.shortname,
        "categoryid": course.category,
        "categoryname": category.name if category else "",
        "sortorder": 10000 + course.id,
        "summary": course.summary,
        "summaryformat": 1,
        "summaryfiles": [],
        "overviewfiles": [],
        "showactivitydates": True,
        "showcompletionconditions": True,
        "contacts": [],
        "enrollmentmethods": sorted(
            {i.enrol for i in state.instances_of(course.id) if i.status == ENROL_INSTANCE_ENABLED}
        ),
        "customfields": [],
    }
    try:
        _validate_course_context(ctx, course)
    except WsError:
        return info
    info.update(
        format=course.format, showgrades=1, newsitems=5, startdate=course.startdate,
        enddate=course.enddate, maxbytes=0, showreports=0, visible=int(course.visible),
        groupmode=0, groupmodeforce=0, defaultgroupingid=0, enablecompletion=0,
        completionnotify=0, lang="", theme="", marker=0, filters=[], courseformatoptions=[],
    )  # fmt: skip
    if token.can("moodle/course:update"):
        info.update(idnumber=course.idnumber, calendartype="", timecreated=0, timemodified=0)
    return info


# ------------------------------------------------------------------------------------------------
# Cohorts and cohort sync (cohort/externallib.php, enrol/cohort/locallib.php)


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
    if not ctx.token.can("moodle/cohort:manage"):
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
    return {"cohorts": [{**_cohort_out(c), "customfields": []} for c in page]}


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
        if not (ctx.token.can("moodle/cohort:manage") or ctx.token.can("moodle/cohort:assign")):
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
        if not (ctx.token.can("moodle/cohort:manage") or ctx.token.can("moodle/cohort:assign")):
            raise required_capability("moodle/cohort:assign")
        cohort_remove_member(ctx, cohort.id, user.id)


def cohort_add_member(ctx: Ctx, cohortid: int, userid: int) -> None:
    state, txn = ctx.state, ctx.txn
    members = state.cohort_members.setdefault(cohortid, set())
    if userid in members:
        return
    txn.sadd(members, userid)
    txn.event("cohort_member_added")
    # enrol_cohort observer: enrol immediately in every enabled instance using this cohort.
    for inst in _cohort_instances(state, cohortid):
        if inst.status != ENROL_INSTANCE_ENABLED:
            continue
        ue = state.ue.get((inst.id, userid))
        if ue is None:
            enrol_user(ctx, inst, userid, inst.roleid, 0, 0, ENROL_USER_ACTIVE)
        else:
            if ue.status == ENROL_USER_SUSPENDED:
                update_user_enrol(ctx, ue, ENROL_USER_ACTIVE, None, None)
            if inst.roleid:
                state.role_assign(
                    txn, inst.courseid, userid, (inst.roleid, "enrol_cohort", inst.id)
                )
        if inst.customint2 and inst.customint2 in state.groups:
            txn.dset(
                state.group_members.setdefault(inst.customint2, {}),
                userid,
                ("enrol_cohort", inst.id),
            )


def cohort_remove_member(ctx: Ctx, cohortid: int, userid: int) -> None:
    state, txn = ctx.state, ctx.txn
    txn.sdiscard(state.cohort_members.setdefault(cohortid, set()), userid)
    txn.event("cohort_member_removed")  # fired even for non-members
    for inst in _cohort_instances(state, cohortid):
        ue = state.ue.get((inst.id, userid))
        if ue is None:
            continue
        action = (
            inst.unenrolaction
            if inst.unenrolaction is not None
            else state.site.enrol_cohort_unenrolaction
        )
        if action == ENROL_EXT_REMOVED_UNENROL:
            unenrol_user(ctx, inst, userid)
        elif ue.status != ENROL_USER_SUSPENDED:
            update_user_enrol(ctx, ue, ENROL_USER_SUSPENDED, None, None)
            if action == ENROL_EXT_REMOVED_SUSPENDNOROLES:
                state.role_unassign_all(txn, inst.courseid, userid, "enrol_cohort", inst.id)


def _cohort_instances(state: State, cohortid: int) -> list[Instance]:
    return sorted(
        (i for i in state.instances.values() if i.enrol == "cohort" and i.customint1 == cohortid),
        key=lambda i: i.id,
    )


# ------------------------------------------------------------------------------------------------
# Meta links (enrol/meta): WS functions and the sync they trigger


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
            _validate_course_context(ctx, linked)
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
            if not ctx.token.can("moodle/course:managegroups"):
                raise invalid_parameter(
                    f"No permission to create group in linked course id = {item['courseid']}."
                )
            group = _create_group(ctx, meta.id, f"{linked.fullname} course")
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
    message = (
        f"Meta course ID = {courseid} doesn't exist or you don't have permission to add an "
        "enrolment instance."
    )
    if course is None:
        raise invalid_parameter(message)
    try:
        _validate_course_context(ctx, course)
        ctx.require("moodle/course:enrolconfig")
        ctx.require("enrol/meta:config")
    except WsError:
        raise invalid_parameter(message) from None
    return course


def _linked_course(ctx: Ctx, raw_courseid: str) -> Course | None:
    return ctx.state.courses.get(clean_param(raw_courseid, "int"))


def _meta_msg_course(courseid: str) -> str:
    return (
        f"Course ID = {courseid} doesn't exist or you don't have permission to add a course meta "
        "link."
    )


def _meta_link(state: State, metaid: int, linkedid: int) -> Instance | None:
    return next((i for i in state.instances_of(metaid, "meta") if i.customint1 == linkedid), None)


def meta_sync_instance(ctx: Ctx, inst: Instance) -> None:
    """enrol_meta_sync for one link: mirror the linked course's (non-meta) enrolments and roles."""
    state, txn = ctx.state, ctx.txn
    linked = inst.customint1
    source: dict[int, bool] = {}
    for userid, iids in state.course_users.get(linked, {}).items():
        real = [state.instances[i] for i in iids if state.instances[i].enrol != "meta"]
        if real:
            source[userid] = any(
                i.status == ENROL_INSTANCE_ENABLED
                and state.ue[(i.id, userid)].status == ENROL_USER_ACTIVE
                for i in real
            )
    for userid, active in source.items():
        status = ENROL_USER_ACTIVE if active else ENROL_USER_SUSPENDED
        ue = state.ue.get((inst.id, userid))
        if ue is None:
            now = state.now()
            state.put_ue(txn, UserEnrolment(inst.id, userid, status, 0, 0, now, now), inst.courseid)
            txn.event("user_enrolment_created")
        elif ue.status != status:
            update_user_enrol(ctx, ue, status, None, None)
        wanted = {
            r for (r, comp, _i) in state.ra.get((linked, userid), set()) if comp != "enrol_meta"
        }
        held = {
            (r, c, i)
            for (r, c, i) in state.ra.get((inst.courseid, userid), set())
            if c == "enrol_meta" and i == inst.id
        }
        for ra in held:
            if ra[0] not in wanted:
                txn.sdiscard(state.ra[(inst.courseid, userid)], ra)
        for roleid in wanted:
            state.role_assign(txn, inst.courseid, userid, (roleid, "enrol_meta", inst.id))
        if inst.customint2 and inst.customint2 in state.groups:
            txn.dset(
                state.group_members.setdefault(inst.customint2, {}), userid, ("enrol_meta", inst.id)
            )
    for (iid, userid), ue in list(state.ue.items()):
        if iid != inst.id or userid in source:
            continue
        action = state.site.enrol_meta_unenrolaction
        if action == ENROL_EXT_REMOVED_UNENROL:
            unenrol_user(ctx, inst, userid)
        elif ue.status != ENROL_USER_SUSPENDED:
            update_user_enrol(ctx, ue, ENROL_USER_SUSPENDED, None, None)
        if action == ENROL_EXT_REMOVED_SUSPENDNOROLES:
            state.role_unassign_all(txn, inst.courseid, userid, "enrol_meta", inst.id)


def sync_meta_links(ctx: Ctx) -> None:
    """Run the meta sync for links whose linked course changed during this call."""
    seen: set[int] = set()
    while ctx.touched_courses - seen:
        courseid = min(ctx.touched_courses - seen)
        seen.add(courseid)
        for inst in [
            i
            for i in ctx.state.instances.values()
            if i.enrol == "meta" and i.customint1 == courseid
        ]:
            if inst.status == ENROL_INSTANCE_ENABLED:
                meta_sync_instance(ctx, inst)


# ------------------------------------------------------------------------------------------------
# Groups


def core_group_add_group_members(ctx: Ctx, params: dict[str, Any]) -> None:
    state = ctx.state
    for member in params["members"]:
        group = state.groups.get(member["groupid"])
        if group is None:
            raise missing_record("groups", "id = ?", member["groupid"])
        user = state.users.get(member["userid"])
        if user is None or user.deleted:
            raise missing_record("user", "id = ? AND deleted = ?", member["userid"], 0)
        _validate_course_context(ctx, state.courses[group.courseid])
        ctx.require("moodle/course:managegroups")
        if not state.is_enrolled(group.courseid, user.id):
            raise invalid_parameter("Only enrolled users may be members of groups")
        members = state.group_members.setdefault(group.id, {})
        if user.id not in members:
            ctx.txn.dset(members, user.id, ("", 0))
            ctx.txn.event("group_member_added")


def _create_group(ctx: Ctx, courseid: int, name: str) -> int:
    state = ctx.state
    group = Group(state.next_id("groups", state.groups), courseid, name)
    ctx.txn.dset(state.groups, group.id, group)
    ctx.txn.dset(state.group_members, group.id, {})
    return group.id


# ------------------------------------------------------------------------------------------------
# core_webservice_get_site_info


def core_webservice_get_site_info(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    user = state.users.get(ctx.token.userid)
    release, version = RELEASES[state.site.version]
    allowed = sorted(ctx.token.functions if ctx.token.functions is not None else FUNCTIONS)
    return {
        "sitename": state.site.sitename,
        "username": user.username if user else "",
        "firstname": user.firstname if user else "",
        "lastname": user.lastname if user else "",
        "fullname": f"{user.firstname} {user.lastname}" if user else "",
        "lang": "en",
        "userid": ctx.token.userid,
        "siteurl": state.site.siteurl,
        "userpictureurl": f"{state.site.siteurl}/theme/image.php/boost/core/1/u/f1",
        "functions": [{"name": f, "version": version} for f in allowed],
        "downloadfiles": 0,
        "uploadfiles": 0,
        "release": release,
        "version": version,
        "mobilecssurl": "",
        "advancedfeatures": [],
        "usercanmanageownfiles": True,
        "userquota": 0,
        "usermaxuploadfilesize": -1,
        "userhomepage": 1,
        "siteid": 1,
        "sitecalendartype": "gregorian",
        "usercalendartype": "gregorian",
        "userissiteadmin": "*" in ctx.token.capabilities,
        "theme": "boost",
    }


# ------------------------------------------------------------------------------------------------
# Registry


def _members_params(row: dict[str, Desc]) -> Single:
    return Single({"members": Multiple(Single(row))})


def function_table(site_version_at_least: Callable[[str], bool]) -> dict[str, Function]:
    """The emulated functions with their parameter descriptions for one site version."""
    type_value = {"type": Value("alphanumext"), "value": Value("raw")}
    table = [
        Function(
            "enrol_manual_enrol_users", _enrol_params(), enrol_manual_enrol_users, returns_null=True
        ),
        Function(
            "enrol_manual_unenrol_users",
            _unenrol_params(with_roleid=not site_version_at_least("5.2")),
            enrol_manual_unenrol_users,
            returns_null=True,
        ),
        Function(
            "core_enrol_get_enrolled_users",
            Single(
                {
                    "courseid": Value("int"),
                    "options": Multiple(
                        Single({"name": Value("alphanumext"), "value": Value("raw")}), DEFAULT, []
                    ),
                }
            ),
            core_enrol_get_enrolled_users,
        ),
        Function(
            "core_user_get_users_by_field",
            Single({"field": Value("alpha"), "values": Multiple(Value("raw"))}),
            core_user_get_users_by_field,
        ),
        Function(
            "core_course_get_courses_by_field",
            Single({"field": Value("alpha", DEFAULT, ""), "value": Value("raw", DEFAULT, "")}),
            core_course_get_courses_by_field,
        ),
        Function(
            "core_cohort_create_cohorts",
            Single(
                {
                    "cohorts": Multiple(
                        Single(
                            {
                                "categorytype": Single(
                                    {"type": Value("text"), "value": Value("raw")}
                                ),
                                "name": Value("raw"),
                                "idnumber": Value("raw"),
                                "description": Value("raw", OPTIONAL),
                                "descriptionformat": Value("int", DEFAULT, 1),
                                "visible": Value("bool", OPTIONAL),
                                "theme": Value("theme", OPTIONAL),
                            }
                        )
                    )
                }
            ),
            core_cohort_create_cohorts,
        ),
        Function(
            "core_cohort_search_cohorts",
            Single(
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
            ),
            core_cohort_search_cohorts,
        ),
        Function(
            "core_cohort_add_cohort_members",
            _members_params({"cohorttype": Single(type_value), "usertype": Single(type_value)}),
            core_cohort_add_cohort_members,
        ),
        Function(
            "core_cohort_delete_cohort_members",
            _members_params({"cohortid": Value("int"), "userid": Value("int")}),
            core_cohort_delete_cohort_members,
            returns_null=True,
        ),
        Function(
            "enrol_meta_add_instances",
            Single(
                {
                    "instances": Multiple(
                        Single(
                            {
                                "metacourseid": Value("int"),
                                "courseid": Value("raw"),
                                "creategroup": Value("bool", DEFAULT, False),
                            }
                        ),
                        DEFAULT,
                        [],
                    )
                }
            ),
            enrol_meta_add_instances,
        ),
        Function(
            "enrol_meta_delete_instances",
            Single(
                {
                    "instances": Multiple(
                        Single({"metacourseid": Value("int"), "courseid": Value("raw")}),
                        DEFAULT,
                        [],
                    )
                }
            ),
            enrol_meta_delete_instances,
        ),
        Function(
            "core_group_add_group_members",
            _members_params({"groupid": Value("int"), "userid": Value("int")}),
            core_group_add_group_members,
            returns_null=True,
        ),
        Function(
            "core_webservice_get_site_info",
            Single({"serviceshortnames": Multiple(Value("alphanumext"), DEFAULT, [])}),
            core_webservice_get_site_info,
        ),
    ]
    return {f.name: f for f in table}


FUNCTIONS: Final = tuple(function_table(lambda _v: True))
