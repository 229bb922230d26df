"""Through which method each user is enrolled: Moodle's custom report, over web services or as CSV.

``core_enrol_get_enrolled_users`` — what the worker reads — does not say by which method a user
is enrolled, and no other core function lists manual or Database-method enrolments per user
(moodle-ws.md §4). Moodle's report builder (4.1+) does: a custom report on the **Course
participants** source, created once by an administrator, with four columns in this order:

1. Course › *Course ID number* (the reconciler's course key),
2. User › *ID number* (or the field ``RECONCILER_USER_FIELD`` names),
3. Enrolment method › *Plugin* (4.3+; *Enrolment › Method* before),
4. Enrolment › *Status*.

It is read with ``core_reportbuilder_retrieve_report`` (``--methods-report ID``: the service
needs the function, and its user ``moodle/reportbuilder:view`` and a place in the report's
audience) or downloaded from the report's page as CSV (``--methods FILE``). One row per user
enrolment: a user enrolled by two methods has two rows. Plugin names are the report's display
names (English or French) or the plugin's own name; status "Active" (or "Actif") is active,
anything else (suspended, not current) is not.

Example::

    methods = from_csv(Path("participants.csv"))          # course → user → plugin → active
    methods["2026-INF101"]["21000001"]                    # {"database": True, "manual": True}
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from streams.domain.cutover import UserMethods
from streams.moodle import MoodleClient

__all__ = [
    "Methods",
    "from_csv",
    "from_report",
    "from_rows",
    "of_course",
    "plugin_of",
    "selection_options",
]

Methods = dict[str, dict[str, dict[str, bool]]]
"""course → user → enrol plugin → whether that enrolment is active."""

REPORT_FUNCTION = "core_reportbuilder_retrieve_report"
PAGE = 5000

# enrol_plugin::get_instance_name(null) as the report prints it (en, fr), and the plugin names.
_PLUGINS = {
    "manual enrolments": "manual",
    "inscription manuelle": "manual",
    "inscriptions manuelles": "manual",
    "external database": "database",
    "base de données externe": "database",
    "cohort sync": "cohort",
    "synchronisation des cohortes": "cohort",
    "course meta link": "meta",
    "méta-lien cours": "meta",
    "self enrolment": "self",
    "auto-inscription": "self",
    "guest access": "guest",
    "accès anonyme": "guest",
}
_ACTIVE = {"active", "actif", "0"}


def plugin_of(name: str) -> str:
    """``manual``, ``database``, … from the report's display name (or the plugin name)."""
    text = name.strip().lower()
    return _PLUGINS.get(text, text)


def from_rows(rows: Iterable[Sequence[str]], courses: set[str] | None = None) -> Methods:
    """Rows of (course, user, plugin, status), optionally only those of ``courses``."""
    methods: Methods = {}
    for row in rows:
        if len(row) < 4:
            continue
        course, user, plugin, status = (str(cell).strip() for cell in row[:4])
        if not course or not user or (courses is not None and course not in courses):
            continue
        held = methods.setdefault(course, {}).setdefault(user, {})
        key = plugin_of(plugin)
        held[key] = held.get(key, False) or status.lower() in _ACTIVE
    return methods


def from_csv(path: Path, courses: set[str] | None = None) -> Methods:
    """The report downloaded as CSV (a header line, ``,`` or ``;``, UTF-8 with or without BOM)."""
    text = path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    return from_rows(rows[1:], courses)


async def from_report(
    client: MoodleClient,
    report_id: int,
    courses: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Methods:
    """Every page of the custom report, through ``core_reportbuilder_retrieve_report``."""
    rows: list[list[str]] = []
    page = 0
    while True:
        answer = await client.call(
            REPORT_FUNCTION, {"reportid": report_id, "page": page, "perpage": PAGE}
        )
        data: Mapping[str, Any] = answer.get("data", {}) if isinstance(answer, dict) else {}
        chunk = [list(r.get("columns", [])) for r in data.get("rows", [])]
        rows.extend(chunk)
        if progress is not None:
            progress(len(chunk))
        total = int(data.get("totalrowcount", 0))
        page += 1
        if not chunk or len(rows) >= total:
            break
    return from_rows(rows, courses)


def of_course(methods: Methods | None, course: str) -> Mapping[str, UserMethods] | None:
    """One course's users, or None when the methods are not known at all."""
    return None if methods is None else methods.get(course, {})


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The course selection (arguments, ``--file``, ``--all``) and where the enrolment methods
    come from (``--methods-report``, ``--methods``), shared by ``shadow-report`` and
    ``cutover``."""
    decorators = [
        click.argument("courses", nargs=-1),
        click.option(
            "--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path)
        ),
        click.option(
            "--all", "everything", is_flag=True, help="Every course the reconciler knows."
        ),
        click.option(
            "--methods-report",
            "report_id",
            type=int,
            envvar="RECONCILER_METHODS_REPORT_ID",
            help="Moodle custom report (Course participants: course, user, plugin, status) read "
            "with core_reportbuilder_retrieve_report. Env RECONCILER_METHODS_REPORT_ID.",
        ),
        click.option(
            "--methods",
            "methods_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="The same report downloaded as CSV.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command
