"""course/externallib.php: core_course_get_courses_by_field (moodle-ws.md §5, §11)."""

from __future__ import annotations

from typing import Any, Final

from streams.emulator.external import (
    DEFAULT,
    OPTIONAL,
    Multiple,
    Single,
    Value,
    WsError,
    clean_param,
    invalid_parameter,
)
from streams.emulator.functions.base import Ctx, Function, validate_course_context
from streams.emulator.state import ENROL_INSTANCE_ENABLED, Course


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
    visible = [
        c
        for c in courses
        if c.visible
        or ctx.can("moodle/course:viewhiddencourses")
        or ctx.can("moodle/course:update")
    ]
    return {"courses": [course_info(ctx, c) for c in visible], "warnings": []}


def course_info(ctx: Ctx, course: Course) -> dict[str, Any]:
    """Public information for anyone; the rest once the caller can enter the course; idnumber
    only with moodle/course:update. ``enrollmentmethods`` lists the *enabled* instances' plugins
    (the one read that shows whether a course has a usable manual instance)."""
    state = ctx.state
    category = state.categories.get(course.category)
    info: dict[str, Any] = {
        "id": course.id, "fullname": course.fullname, "displayname": course.fullname,
        "shortname": course.shortname, "courseimage": course_image(ctx, course),
        "categoryid": course.category, "categoryname": category.name if category else "",
        "sortorder": course.sortorder, "summary": course.summary, "summaryformat": 1,
        "summaryfiles": [], "overviewfiles": [], "showactivitydates": True,
        "showcompletionconditions": True, "contacts": [],
        "enrollmentmethods": sorted(
            {i.enrol for i in state.instances_of(course.id) if i.status == ENROL_INSTANCE_ENABLED}
        ),
    }  # fmt: skip
    try:
        validate_course_context(ctx, course)
    except WsError:
        return info
    info.update(
        format=course.format, showgrades=1, newsitems=5, startdate=course.startdate,
        enddate=course.enddate, maxbytes=0, showreports=0, visible=int(course.visible),
        groupmode=0, groupmodeforce=0, defaultgroupingid=0, enablecompletion=0,
        completionnotify=0, lang="", theme="", marker=0, filters=[], courseformatoptions=[],
    )  # fmt: skip
    if ctx.can("moodle/course:update"):
        info.update(idnumber=course.idnumber, calendartype="", timecreated=0, timemodified=0)
    return info


def course_image(ctx: Ctx, course: Course) -> str:
    return f"{ctx.state.site.siteurl}/course/generated/{course.id}.svg"


def _opt(type_: str) -> Value:
    return Value(type_, OPTIONAL)


_FILES: Final = Multiple(
    Single({"filename": _opt("file"), "filepath": _opt("path"), "filesize": _opt("int"),
            "fileurl": _opt("url"), "timemodified": _opt("int"), "mimetype": _opt("raw")}),
    OPTIONAL,
)  # fmt: skip

COURSE: Final = Single(
    {
        "id": Value("int"), "fullname": Value("text"), "displayname": Value("text"),
        "shortname": Value("text"), "courseimage": _opt("url"), "categoryid": Value("int"),
        "categoryname": Value("text"), "sortorder": _opt("int"), "summary": Value("raw"),
        "summaryformat": Value("int"), "summaryfiles": _FILES, "overviewfiles": _FILES,
        "showactivitydates": Value("bool"), "showcompletionconditions": Value("bool"),
        "contacts": Multiple(Single({"id": Value("int"), "fullname": Value("notags")})),
        "enrollmentmethods": Multiple(Value("plugin")),
        "customfields": Multiple(
            Single({"name": Value("raw"), "shortname": Value("raw"), "type": Value("component"),
                    "valueraw": Value("raw"), "value": Value("raw")}), OPTIONAL),
        "idnumber": _opt("raw"), "format": _opt("plugin"), "showgrades": _opt("int"),
        "newsitems": _opt("int"), "startdate": _opt("int"), "enddate": _opt("int"),
        "maxbytes": _opt("int"), "showreports": _opt("int"), "visible": _opt("int"),
        "groupmode": _opt("int"), "groupmodeforce": _opt("int"),
        "defaultgroupingid": _opt("int"), "enablecompletion": _opt("int"),
        "completionnotify": _opt("int"), "lang": _opt("safedir"), "theme": _opt("plugin"),
        "marker": _opt("int"), "legacyfiles": _opt("int"), "calendartype": _opt("plugin"),
        "timecreated": _opt("int"), "timemodified": _opt("int"), "requested": _opt("int"),
        "cacherev": _opt("int"),
        "filters": Multiple(Single({"filter": Value("plugin"), "localstate": Value("int"),
                                    "inheritedstate": Value("int")}), OPTIONAL),
        "courseformatoptions": Multiple(Single({"name": Value("alpha"), "value": Value("raw")}),
                                        OPTIONAL),
    }
)  # fmt: skip

WARNINGS: Final = Multiple(
    Single({"item": _opt("text"), "itemid": _opt("int"), "warningcode": Value("alphanum"),
            "message": Value("text")}),
    DEFAULT,
    [],
)  # fmt: skip


def functions(at_least: Any) -> list[Function]:
    return [
        Function(
            "core_course_get_courses_by_field",
            Single({"field": Value("alpha", DEFAULT, ""), "value": Value("raw", DEFAULT, "")}),
            core_course_get_courses_by_field,
            Single({"courses": Multiple(COURSE), "warnings": WARNINGS}),
        )
    ]
