"""``reconciler cohorts``: the administrative-enrolment cohorts and the courses that use them.

* ``cohorts sync-csv`` — cohort-sync enrolment methods added, disabled, re-enabled or
  removed across many courses. No Moodle web service creates an ``enrol_cohort`` instance
  (moodle-ws.md §6), but Moodle's own *Upload courses* tool does, from a CSV (§12): this
  command checks the staff's list and writes that CSV, for an administrator to upload
  (Site administration › Courses › Upload courses; upload mode "Only update existing
  courses", update mode "Update with CSV data only"). One output row per change, each with
  its ``enrolment_1_cohortidnumber`` and ``enrolment_1_role``: the 4.x tool finds the
  instance by both (``enrol_cohort::find_instance``), so several cohorts per course work.
* ``cohorts backfill`` — when the cohort stage is turned on (``RECONCILER_COHORT_TEMPLATE``)
  in a deployment that already holds students, their stage facts are read from the students
  table's changelog and sent once to the cohort topic (a fact already there is a no-op).

Input of ``sync-csv`` (header, ``,`` or ``;``): ``course`` (shortname), ``cohort``
(idnumber), ``role`` (default ``student``), ``action`` (``add``, ``disable``, ``enable``,
``remove``; default ``add``), ``group`` (``none`` default, or ``new``: a group named after
the cohort).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import ValidationError

from schemas.course_events import FactChange, FactsChanged
from streams.tools import csvfile, ui
from streams.tools.csvfile import Invalid
from streams.tools.ui import Exit

__all__ = ["MethodLine", "cohorts", "parse_methods", "upload_csv"]

_ALIASES = {
    "course": "course",
    "shortname": "course",
    "cohort": "cohort",
    "cohortidnumber": "cohort",
    "role": "role",
    "action": "action",
    "group": "group",
}
ACTIONS = ("add", "disable", "enable", "remove")
UPLOAD_COLUMNS = (
    "shortname",
    "enrolment_1",
    "enrolment_1_role",
    "enrolment_1_cohortidnumber",
    "enrolment_1_addtogroup",
    "enrolment_1_disable",
    "enrolment_1_delete",
)


@dataclass(frozen=True, slots=True)
class MethodLine:
    line: int
    course: str
    cohort: str
    role: str
    action: str
    new_group: bool


def parse_methods(text: str, roles: Sequence[str]) -> tuple[list[MethodLine], list[Invalid]]:
    table = csvfile.read(text, _ALIASES, ("course", "cohort"))
    lines: list[MethodLine] = []
    invalid = list(table.invalid)
    seen: dict[tuple[str, str, str], int] = {}
    for row in table:
        course, cohort = row.get("course"), row.get("cohort")
        role = row.get("role") or "student"
        action = row.get("action").lower() or "add"
        group = row.get("group").lower() or "none"
        reason = None
        if not course or not cohort:
            reason = "a course shortname and a cohort idnumber are needed"
        elif role not in roles:
            reason = f"unknown role {role!r} (known: {', '.join(sorted(roles))})"
        elif action not in ACTIONS:
            reason = f"action {action!r} is not one of {', '.join(ACTIONS)}"
        elif group not in ("none", "new"):
            reason = f"group {group!r} is neither none nor new"
        elif group == "new" and action != "add":
            reason = "a new group only comes with add"
        elif (course, cohort, role) in seen:
            reason = f"same course, cohort and role as line {seen[(course, cohort, role)]}"
        if reason is not None:
            invalid.append(Invalid(row.line, reason))
            continue
        seen[(course, cohort, role)] = row.line
        lines.append(MethodLine(row.line, course, cohort, role, action, group == "new"))
    return lines, sorted(invalid, key=lambda i: i.line)


def upload_csv(lines: Sequence[MethodLine]) -> str:
    """Moodle's Upload courses CSV for these changes (tool_uploadcourse, §12)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(UPLOAD_COLUMNS)
    for x in lines:
        disable = {"disable": "1", "enable": "0", "add": "0"}.get(x.action, "")
        writer.writerow(
            [
                x.course,
                "cohort",
                x.role,
                x.cohort,
                ("1" if x.new_group else "0") if x.action == "add" else "",
                disable,
                "1" if x.action == "remove" else "",
            ]
        )
    return out.getvalue()


async def _check_moodle(lines: Sequence[MethodLine]) -> list[Invalid]:
    from streams.moodle import MoodleClient, MoodleSettings

    async with MoodleClient(MoodleSettings.from_env()) as client:
        courses = {
            name: bool(await client.core_course_get_courses_by_field("shortname", name))
            for name in sorted({x.course for x in lines})
        }
        cohorts = {}
        for name in sorted({x.cohort for x in lines}):
            found = await client.core_cohort_search_cohorts(name)
            cohorts[name] = any(c.idnumber == name for c in found)
    bad = []
    for x in lines:
        if not courses[x.course]:
            bad.append(Invalid(x.line, f"no Moodle course with shortname {x.course}"))
        elif not cohorts[x.cohort]:
            bad.append(Invalid(x.line, f"no Moodle cohort with idnumber {x.cohort}"))
    return bad


@click.group(name="cohorts")
def cohorts() -> None:
    """Administrative-enrolment cohorts: cohort-sync methods in bulk, backfill."""


@cohorts.command(
    name="sync-csv",
    epilog=ui.epilog(
        "invalid lines: no file written",
        [
            "reconciler cohorts sync-csv l1-cohort-methods.csv -o upload-courses.csv",
            "reconciler cohorts sync-csv retire-2025.csv -o - --check-moodle > upload.csv",
        ],
    ),
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", required=True, help="Where to write the Upload courses CSV (- : stdout)."
)
@click.option("--check-moodle", is_flag=True, help="Check courses and cohorts exist (WS).")
@click.option("--json", "as_json", is_flag=True, help="The changes as JSON lines (stdout).")
def sync_csv(path: Path, output: str, check_moodle: bool, as_json: bool) -> None:
    """Turn a list of cohort-sync changes (course, cohort, role, action, group) into Moodle's
    Upload courses CSV, after checking every line (and, with --check-moodle, that the
    courses and cohorts exist). Upload it with "Only update existing courses".
    """
    from streams.pipeline.settings import WorkerSettings, explain

    try:
        roles = sorted(WorkerSettings().role_ids)
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_"))
        return
    lines, invalid = parse_methods(path.read_text(encoding="utf-8-sig"), roles)
    if check_moodle and lines:
        invalid = sorted([*invalid, *asyncio.run(_check_moodle(lines))], key=lambda i: i.line)
    if invalid:
        for item in invalid:
            text = f"{path.name}:{item.line}: {item.reason}"
            if as_json:
                ui.emit_json({"line": item.line, "invalid": item.reason})
            else:
                ui.say(ui.clip(text), err=output == "-")
        ui.say(f"{len(invalid)} invalid line(s): no file written", err=True)
        raise SystemExit(int(Exit.ATTENTION))
    body = upload_csv(lines)
    if output == "-":
        click.echo(body, nl=False)
    else:
        Path(output).write_text(body, encoding="utf-8")
    counts = Counter(x.action for x in lines)
    if as_json:
        for x in lines:
            ui.emit_json(
                {
                    "line": x.line,
                    "course": x.course,
                    "cohort": x.cohort,
                    "role": x.role,
                    "action": x.action,
                    "new_group": x.new_group,
                }
            )
    summary = ", ".join(f"{counts[a]} {a}" for a in ACTIONS if counts[a])
    where = "stdout" if output == "-" else output
    ui.say(
        f"{len(lines)} change(s) in {len({x.course for x in lines})} course(s) ({summary}) "
        f"written to {where}: upload it in Site administration › Courses › Upload courses "
        "(Only update existing courses; Update with CSV data only)",
        err=output == "-" or as_json,
    )


@cohorts.command(
    name="backfill",
    epilog=ui.epilog(
        "—",
        ["reconciler cohorts backfill --dry-run", "reconciler cohorts backfill --json"],
    ),
)
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per cohort.")
def backfill(dry_run: bool, as_json: bool) -> None:
    """Send the stage facts of every student already known to the cohort stage (once, after
    turning it on): read from the students table's changelog, routed by
    RECONCILER_COHORT_TEMPLATE, sent to the cohort topic. Facts already there change nothing.
    """
    from streams.domain.cohorts import cohort_mapping
    from streams.domain.derive import facts_of
    from streams.domain.desired import route
    from streams.domain.fold import FactAsserted
    from streams.kafka.producer import DeliveryError, ToolProducer
    from streams.kafka.reader import HistoryReader, ReadError
    from streams.kafka.settings import KafkaSettings
    from streams.pipeline.codec import decode_student, encode_event
    from streams.pipeline.cohorts import cohort_events
    from streams.pipeline.settings import WorkerSettings, explain

    try:
        worker, kafka = WorkerSettings(), KafkaSettings()
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_"))
        return
    if not worker.cohort_template:
        ui.fail(Exit.USAGE, "RECONCILER_COHORT_TEMPLATE is not set: the cohort stage is off")
        return
    mapping = cohort_mapping(worker.cohort_template)
    policy = worker.fold_policy()
    by_cohort: dict[str, list[FactChange]] = defaultdict(list)
    try:
        with HistoryReader(kafka) as reader, ui.progress("reading students", None) as advance:
            states = reader.latest(f"{worker.app_id}-students-changelog", progress=advance)
    except ReadError as exc:
        ui.fail(Exit.KAFKA, str(exc))
        return
    for raw in states.values():
        facts = facts_of(decode_student(raw), policy)
        for change in route(map(FactAsserted, facts), mapping):
            by_cohort[change.course].append(FactChange(change.role, change.fact, True))
    topic = cohort_events(worker.app_id)
    for cohort, changes in sorted(by_cohort.items()):
        if as_json:
            ui.emit_json({"cohort": cohort, "members": len(changes)})
    members = sum(len(c) for c in by_cohort.values())
    what = f"{len(by_cohort)} cohort(s), {members} member(s) from {len(states)} student(s)"
    if dry_run:
        ui.say(f"dry run: {what}; nothing sent", err=as_json)
        return
    try:
        with ToolProducer(kafka) as producer:
            for cohort, changes in by_cohort.items():
                for start in range(0, len(changes), 500):
                    event = FactsChanged(course=cohort, changes=tuple(changes[start : start + 500]))
                    producer.send(topic, cohort.encode(), encode_event(event))
    except (DeliveryError, Exception) as exc:
        ui.fail(Exit.KAFKA, f"not sent: {exc}")
        return
    ui.say(f"sent {what} to {topic}", err=as_json)
