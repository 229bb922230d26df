"""``reconciler enrol-csv``: batch enrolment from a CSV file, into one course or several.

The staff's "inscription par lot" as a source of the pipeline, not a side door: each valid
line becomes a *manual membership fact* (``FactKind.MANUAL``: user, course, role, optional
dates) asserted (``add``) or retracted (``remove``) on the course-events topic, keyed by
course, so the worker folds it like an APOGÉE fact — same desired state, same plan, grace
window and mass-removal guard, same audit. Its provenance is the file and the line (table
``CSV``, key ``<file>:<line>``, the batch id as transaction), which ``reconciler audit`` shows.

Every line is checked before anything is sent; one invalid line and nothing is sent, every
invalid line is listed with its number and reason. ``--dry-run`` stops after the check and
shows what would be sent.

File: a header line, then one enrolment per line; ``,`` or ``;`` separated, UTF-8 (a BOM is
fine). Columns (case-insensitive; aliases in brackets):

* ``user`` [``idnumber``, ``student``] — the Moodle user's key (the student number);
* ``course`` [``course_idnumber``] — the course idnumber; may be left out with ``--course``;
* ``role`` — a role shortname known to ``RECONCILER_ROLE_IDS`` (empty: ``student``);
* ``start``, ``end`` [``timestart``, ``timeend``] — optional: a date (``2026-09-01``, the
  start of that day; as an end date, the whole day is included), a date and time, or unix
  seconds; in ``--tz`` (default Europe/Paris) unless an offset is written;
* ``action`` [``operation``] — ``add`` (default) or ``remove``.

A ``remove`` retracts what the same ``--source`` added: the enrolment goes (after the grace
window, as a suspension by default) only if nothing else supports it — an APOGÉE contract, or
another source.
"""

from __future__ import annotations

import getpass
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from pydantic import ValidationError

from schemas.course_events import FactChange, FactsChanged
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from streams.kafka.producer import DeliveryError, ToolProducer
from streams.kafka.settings import KafkaSettings
from streams.pipeline.codec import encode_event
from streams.pipeline.settings import WorkerSettings, explain
from streams.pipeline.topics import course_events
from streams.tools import csvfile, ui
from streams.tools.csvfile import Invalid
from streams.tools.ui import Exit

__all__ = ["CsvLine", "Invalid", "Parsed", "command", "events", "parse"]

CSV_TABLE = "CSV"
MAX_CHANGES_PER_EVENT = 500
_ALIASES = {
    "user": "user",
    "idnumber": "user",
    "student": "user",
    "course": "course",
    "course_idnumber": "course",
    "role": "role",
    "start": "start",
    "timestart": "start",
    "end": "end",
    "timeend": "end",
    "action": "action",
    "operation": "action",
}
_SPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class CsvLine:
    line: int
    user: str
    course: str
    role: str
    add: bool
    timestart: int | None
    timeend: int | None


@dataclass(frozen=True)
class Parsed:
    lines: tuple[CsvLine, ...]
    invalid: tuple[Invalid, ...]


def parse(
    text: str,
    roles: Iterable[str],
    course: str | None = None,
    tz: ZoneInfo | None = None,
) -> Parsed:
    """Every line checked; a file-level problem (no header, no user column) is line 1."""
    tz = tz or ZoneInfo("UTC")
    known_roles = frozenset(roles)
    required = ("user",) if course is not None else ("user", "course")
    table = csvfile.read(text, _ALIASES, required)
    lines: list[CsvLine] = []
    invalid: list[Invalid] = list(table.invalid)
    seen: dict[tuple[str, str, str], int] = {}
    for row in table:
        result = _line(row, known_roles, course, tz)
        if isinstance(result, Invalid):
            invalid.append(result)
            continue
        key = (result.user, result.course, result.role)
        if key in seen:
            invalid.append(Invalid(row.line, f"same user, course and role as line {seen[key]}"))
            continue
        seen[key] = row.line
        lines.append(result)
    return Parsed(tuple(lines), tuple(sorted(invalid, key=lambda i: i.line)))


def _line(
    row: csvfile.Row, roles: frozenset[str], default_course: str | None, tz: ZoneInfo
) -> CsvLine | Invalid:
    number = row.line
    user, course, role = row.get("user"), row.get("course"), row.get("role") or "student"
    if not user:
        return Invalid(number, "no user")
    if _SPACE.search(user):
        return Invalid(number, f"user {user!r} contains a space")
    if default_course is not None:
        if course and course != default_course:
            return Invalid(number, f"course {course} differs from --course {default_course}")
        course = default_course
    if not course:
        return Invalid(number, "no course")
    if role not in roles:
        return Invalid(number, f"unknown role {role!r} (known: {', '.join(sorted(roles))})")
    action = row.get("action").lower() or "add"
    if action not in ("add", "remove"):
        return Invalid(number, f"action {action!r} is neither add nor remove")
    try:
        start = _moment(row.get("start"), tz, end=False)
        end = _moment(row.get("end"), tz, end=True)
    except ValueError as exc:
        return Invalid(number, str(exc))
    if start and end and end <= start:
        return Invalid(number, "end is not after start")
    return CsvLine(number, user, course, role, action == "add", start, end)


def _moment(text: str, tz: ZoneInfo, *, end: bool) -> int | None:
    """Unix seconds of a date, date-time or epoch; an end date means the end of that day."""
    if not text:
        return None
    what = "end" if end else "start"
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1 if end else 0), time(), tz)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date (2026-09-01, 2026-09-01T08:00)") from None
    return int(moment.timestamp())


def fact_of(line: CsvLine, source: str, file: str, batch: str, at_ms: int) -> MembershipFact:
    ref = SourceRef(CSV_TABLE, f"{file}:{line.line}", line.line, batch, committed_ms=at_ms)
    return MembershipFact(
        line.user,
        FactKind.MANUAL,
        "",
        course=line.course,
        role=line.role,
        origin=source,
        provenance=(ref,),
        timestart=line.timestart,
        timeend=line.timeend,
    )


def events(
    lines: Sequence[CsvLine], source: str, file: str, batch: str, at_ms: int
) -> list[FactsChanged]:
    """One event per course (several for a large course), in line order."""
    by_course: dict[str, list[FactChange]] = defaultdict(list)
    for line in lines:
        fact = fact_of(line, source, file, batch, at_ms)
        by_course[line.course].append(FactChange(line.role, fact, line.add))
    out = []
    for course, changes in by_course.items():
        for start in range(0, len(changes), MAX_CHANGES_PER_EVENT):
            chunk = tuple(changes[start : start + MAX_CHANGES_PER_EVENT])
            out.append(FactsChanged(course=course, changes=chunk))
    return out


def summary_rows(lines: Sequence[CsvLine]) -> list[list[object]]:
    counts: Counter[tuple[str, str, bool]] = Counter((x.course, x.role, x.add) for x in lines)
    courses = sorted({x.course for x in lines})
    rows: list[list[object]] = []
    for course in courses:
        roles = sorted({r for c, r, _ in counts if c == course})
        for role in roles:
            dated = sum(
                1
                for x in lines
                if x.course == course and x.role == role and (x.timestart or x.timeend)
            )
            rows.append(
                [course, role, counts[(course, role, True)], counts[(course, role, False)], dated]
            )
    return rows


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {name!r}", param_hint="--tz") from None


@click.command(
    name="enrol-csv",
    epilog=ui.epilog(
        "invalid lines: nothing sent",
        [
            "reconciler enrol-csv teachers-s1.csv --dry-run",
            "reconciler enrol-csv tutors.csv --course 2026-INF101 --source tutors",
            "reconciler enrol-csv late-ia.csv --check-moodle --json",
        ],
    ),
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--course", help="Every line into this course (the file may omit the column).")
@click.option(
    "--source",
    default="csv",
    show_default=True,
    help="Name of this list: a remove retracts only what the same source added.",
)
@click.option("--tz", default="Europe/Paris", show_default=True, help="Zone of dates and times.")
@click.option("--dry-run", is_flag=True, help="Check and show what would be sent; send nothing.")
@click.option(
    "--check-moodle", is_flag=True, help="Also check users and courses exist in Moodle (WS)."
)
@click.option("--by", default=getpass.getuser, show_default="current user")
@click.option("--json", "as_json", is_flag=True, help="Lines (or invalid lines) as JSON lines.")
def command(
    path: Path,
    course: str | None,
    source: str,
    tz: str,
    dry_run: bool,
    check_moodle: bool,
    by: str,
    as_json: bool,
) -> None:
    """Enrol (or remove) users listed in a CSV file, in one course or several, through the
    reconciler: the lines become manual facts the worker applies like APOGÉE's, with the
    same grace window, guard and audit (provenance: file and line). Every line is checked
    first; if any is invalid, they are all listed and nothing is sent.

    Columns: user, course (or --course), role, start, end, action (add|remove).
    """
    worker, kafka = _settings()
    parsed = parse(_read(path), worker.role_ids, course, _zone(tz))
    invalid = list(parsed.invalid)
    if check_moodle and parsed.lines:
        invalid = sorted([*invalid, *_check_moodle(parsed.lines, worker.user_field)], key=_line_no)
    if invalid:
        _report_invalid(path, invalid, as_json)
        raise SystemExit(int(Exit.ATTENTION))
    _preview(parsed.lines, as_json)
    what = _what(parsed.lines)
    if dry_run:
        ui.say(f"dry run: {what}; nothing sent", err=as_json)
        return
    now = datetime.now(UTC)
    batch = f"{now:%Y%m%dT%H%M%SZ}-{by}-{uuid.uuid4().hex[:6]}"
    out = events(parsed.lines, source, path.name, batch, int(now.timestamp() * 1000))
    topic = course_events(worker.app_id)
    _send(kafka, topic, out)
    ui.say(
        f"sent {what} in {len(out)} event(s) to {topic}; batch {batch} "
        f"(source {source!r}, by {by})",
        err=as_json,
    )


def _settings() -> tuple[WorkerSettings, KafkaSettings]:
    try:
        return WorkerSettings(), KafkaSettings()
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_"))
        raise


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        ui.fail(Exit.ATTENTION, f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})")
        raise


def _preview(lines: Sequence[CsvLine], as_json: bool) -> None:
    if not as_json:
        headers = ("course", "role", "add", "remove", "dated")
        for text in ui.render_table(headers, summary_rows(lines), right=(2, 3, 4)):
            ui.say(text)
        return
    for x in lines:
        ui.emit_json(
            {
                "line": x.line,
                "user": x.user,
                "course": x.course,
                "role": x.role,
                "action": "add" if x.add else "remove",
                "timestart": x.timestart,
                "timeend": x.timeend,
            }
        )


def _what(lines: Sequence[CsvLine]) -> str:
    adds = sum(1 for x in lines if x.add)
    courses = len({x.course for x in lines})
    return f"{len(lines)} line(s): {adds} add, {len(lines) - adds} remove, {courses} course(s)"


def _send(kafka: KafkaSettings, topic: str, out: Sequence[FactsChanged]) -> None:
    try:
        with ui.progress("sending", len(out)) as advance, ToolProducer(kafka) as producer:
            for event in out:
                producer.send(topic, event.course.encode(), encode_event(event))
                advance(1)
    except (DeliveryError, Exception) as exc:  # librdkafka raises several types
        ui.fail(Exit.KAFKA, f"not sent: {exc}")


def _line_no(item: Invalid) -> int:
    return item.line


def _report_invalid(path: Path, invalid: Sequence[Invalid], as_json: bool) -> None:
    ordered = sorted(invalid, key=lambda i: i.line)
    if as_json:
        for item in ordered:
            ui.emit_json({"line": item.line, "invalid": item.reason})
    else:
        for item in ordered:
            ui.say(ui.clip(f"{path.name}:{item.line}: {item.reason}"))
    ui.say(f"{len(ordered)} invalid line(s): nothing sent", err=True)


def _check_moodle(lines: Sequence[CsvLine], user_field: str) -> list[Invalid]:
    """Lines whose user or course Moodle does not know (core_user_get_users_by_field,
    core_course_get_courses_by_field)."""
    import asyncio

    from streams.moodle import MoodleClient, MoodleError, MoodleSettings

    async def check() -> list[Invalid]:
        async with MoodleClient(MoodleSettings.from_env()) as client:
            users = {x.user for x in lines}
            found = await client.core_user_get_users_by_field(user_field, sorted(users))
            known = {str(getattr(u, user_field, "")) for u in found}
            courses = {}
            for name in sorted({x.course for x in lines}):
                courses[name] = bool(
                    await client.core_course_get_courses_by_field("idnumber", name)
                )
        bad = []
        for x in lines:
            if x.user not in known:
                bad.append(Invalid(x.line, f"no Moodle user with {user_field} {x.user}"))
            elif not courses[x.course]:
                bad.append(Invalid(x.line, f"no Moodle course with idnumber {x.course}"))
        return bad

    try:
        return asyncio.run(check())
    except (MoodleError, ValidationError) as exc:
        ui.fail(Exit.MOODLE, f"Moodle check failed: {exc}")
        raise
