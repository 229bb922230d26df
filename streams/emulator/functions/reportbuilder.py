"""reportbuilder/classes/external/reports/retrieve.php: core_reportbuilder_retrieve_report (4.1+).

The one core web service that tells through which method each user is enrolled
(moodle-ws.md §4, "Which call returns per-user enrol method + status?"): a custom report,
built once in the UI on the *Course participants* source, read page by page. The emulator
holds such reports in its seed (``"reports"``) and builds their rows from its enrolments:

    {"id": 7, "name": "Enrolment methods",
     "columns": ["course:idnumber", "user:idnumber", "enrol:plugin", "enrolment:status"]}

One row per user enrolment (a user enrolled by two methods has two rows), formatted as the
report shows them: the plugin's name (``get_instance_name(null)``: "Manual enrolments",
"External database", …) and the status ("Active", "Suspended", "Not current"). Parameters and
the return shape follow Moodle's ``retrieve::execute_parameters/returns`` and
``custom_report_data_exporter`` (``headers``, ``rows[{columns}]``, ``totalrowcount``);
``details`` carries a subset of ``custom_report_details_exporter``'s fields. Not verified on a
real site: the error for a report the user may not view (``report_access_exception``,
``errorreportview``) and for an unknown id.
"""

from __future__ import annotations

from typing import Any, Final

from streams.emulator.external import DEFAULT, Multiple, Single, Value, WsError, missing_record
from streams.emulator.functions.base import Ctx, Function
from streams.emulator.state import (
    ENROL_INSTANCE_ENABLED,
    ENROL_USER_ACTIVE,
    Instance,
    Report,
    State,
    UserEnrolment,
)

PARTICIPANTS: Final = "core_course\\reportbuilder\\datasource\\participants"

# enrol_plugin::get_instance_name(null): the plugin's name string (lang/en/enrol_*.php)
PLUGIN_NAMES: Final = {
    "manual": "Manual enrolments",
    "database": "External database",
    "cohort": "Cohort sync",
    "meta": "Course meta link",
    "self": "Self enrolment",
    "guest": "Guest access",
}

# Column titles, as the report shows them until someone renames them.
TITLES: Final = {
    "course:idnumber": "Course ID number",
    "course:shortname": "Course short name",
    "course:fullname": "Course full name",
    "user:idnumber": "ID number",
    "user:username": "Username",
    "enrol:plugin": "Plugin",
    "enrolment:status": "Status",
}


def core_reportbuilder_retrieve_report(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    report = state.reports.get(params["reportid"])
    if report is None:
        raise missing_record("reportbuilder_report", "id = ?", params["reportid"])
    if not (ctx.can("moodle/reportbuilder:view") or ctx.can("moodle/reportbuilder:viewall")):
        raise WsError(
            "core_reportbuilder\\report_access_exception",
            "errorreportview",
            "You cannot view this report",
        )
    rows = participants(state, report)
    page, perpage = max(0, params["page"]), params["perpage"]
    chosen = rows[page * perpage : (page + 1) * perpage] if perpage > 0 else rows
    return {
        "details": {
            "id": report.id,
            "name": report.name,
            "source": report.source,
            "type": 0,
            "uniquerows": False,
            "conditiondata": "",
            "contextid": 1,
            "component": "",
            "area": "",
            "itemid": 0,
            "usercreated": 2,
            "timecreated": 0,
            "timemodified": 0,
            "usermodified": 2,
            "sourcename": "Course participants",
        },
        "data": {
            "headers": [TITLES.get(c, c) for c in report.columns],
            "rows": [{"columns": r} for r in chosen],
            "totalrowcount": len(rows),
        },
        "warnings": [],
    }


def participants(state: State, report: Report) -> list[list[str]]:
    """The report's rows: one per user enrolment, by course, user and instance id."""
    now = round(state.now(), -2)
    rows = []
    for (iid, uid), ue in sorted(state.ue.items(), key=lambda kv: _order(state, kv[0])):
        inst = state.instances[iid]
        course, user = state.courses.get(inst.courseid), state.users.get(uid)
        if course is None or user is None or user.deleted:
            continue
        values = {
            "course:idnumber": course.idnumber,
            "course:shortname": course.shortname,
            "course:fullname": course.fullname,
            "user:idnumber": user.idnumber,
            "user:username": user.username,
            "enrol:plugin": PLUGIN_NAMES.get(inst.enrol, inst.enrol),
            "enrolment:status": _status(inst, ue, now),
        }
        rows.append([str(values.get(c, "")) for c in report.columns])
    return rows


def _order(state: State, key: tuple[int, int]) -> tuple[int, int, int]:
    iid, uid = key
    return state.instances[iid].courseid, uid, iid


def _status(inst: Instance, ue: UserEnrolment, now: int) -> str:
    """The enrolment entity's status column: active, suspended, or not current (dates, or a
    disabled instance)."""
    if ue.status != ENROL_USER_ACTIVE:
        return "Suspended"
    current = ue.timestart < now and (ue.timeend == 0 or ue.timeend > now)
    return "Active" if current and inst.status == ENROL_INSTANCE_ENABLED else "Not current"


_DETAILS: Final = Single(
    {
        "id": Value("int"),
        "name": Value("text"),
        "source": Value("raw"),
        "type": Value("int"),
        "uniquerows": Value("bool"),
        "conditiondata": Value("raw"),
        "contextid": Value("int"),
        "component": Value("component"),
        "area": Value("area"),
        "itemid": Value("int"),
        "usercreated": Value("int"),
        "timecreated": Value("int"),
        "timemodified": Value("int"),
        "usermodified": Value("int"),
        "sourcename": Value("raw"),
    }
)

_WARNINGS: Final = Multiple(
    Single({"item": Value("text", 2), "itemid": Value("int", 2), "warningcode": Value("alphanum"),
            "message": Value("text")}),
    DEFAULT,
    [],
)  # fmt: skip


def functions(at_least: Any) -> list[Function]:
    return [
        Function(
            "core_reportbuilder_retrieve_report",
            Single(
                {
                    "reportid": Value("int"),
                    "page": Value("int", DEFAULT, 0),
                    "perpage": Value("int", DEFAULT, 10),
                }
            ),
            core_reportbuilder_retrieve_report,
            Single(
                {
                    "details": _DETAILS,
                    "data": Single(
                        {
                            "headers": Multiple(Value("raw")),
                            "rows": Multiple(Single({"columns": Multiple(Value("raw"))})),
                            "totalrowcount": Value("int"),
                        }
                    ),
                    "warnings": _WARNINGS,
                }
            ),
        )
    ]
