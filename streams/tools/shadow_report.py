"""``reconciler shadow-report``: what the reconciler would do, next to the nightly Database method.

Two parts, per course and in total:

* **Now** — the desired enrolments computed from APOGÉE (the worker's desired table, read from
  its changelog as ``reconciler diff`` does) against what Moodle holds through *any* method
  (``core_enrol_get_enrolled_users``, all and ``onlysuspended``) and what the plan would send
  if writes were on (the pure ``plan`` over the worker's ledger, guards included), classified
  by :func:`streams.domain.cutover.compare`: in sync (the reconciler's own enrolment), present
  through another method only (of which held by the Database method alone), would be added
  (of which beside another method's enrolment), missing and left alone, present but not
  desired (never touched: what the nightly job keeps that APOGÉE no longer supports, and
  teachers' own), and the reconciler's own no longer desired: suspended now, in the grace
  window, held by the guard. Which method holds an enrolment is known only from Moodle's
  custom report (``--methods-report ID`` or ``--methods FILE``, :mod:`streams.tools.methods`);
  without it the "db only" column says ``?``.
* **Over a period** (``--since``, default the last day) — the shadow topic's records (each
  would-be command once, with its facts and their provenance, at the time the worker would
  have sent it; held and parked changes too): how many, and how long each difference lasted
  from the APOGÉE commit until the streaming path would have acted, against until the next
  nightly run (``--nightly 02:00``, ``--tz``); "earlier" is by how much the streaming path
  would have been ahead. With ``--unenrolaction keep`` the nightly job never acts on removals.

The exit code is the cut-over gate: 0 when no desired enrolment is held by the Database method
alone (step 4 of the README's runbook may go ahead), 1 otherwise or when the methods are not
known.
"""

from __future__ import annotations

import asyncio
import csv
import io
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from pydantic import ValidationError

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind
from schemas.course_events import CourseMeta
from streams.applier.gateway import MoodleGateway
from streams.domain.cutover import Comparison, Seen, compare, totals
from streams.domain.guard import PlannedRemoval
from streams.domain.ledger import owned_active, recent_removals
from streams.domain.plan import CoursePlan, GlobalLoad, admit_global, plan
from streams.domain.policy import Approvals, PlanPolicy
from streams.kafka.reader import HistoryReader, PartitionSpan, ReadError, partition_of
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.moodle import MoodleClient, MoodleError, MoodleSettings
from streams.pipeline.codec import decode_meta
from streams.pipeline.settings import WorkerSettings, explain
from streams.pipeline.state import CourseTables
from streams.tools import methods as methods_source
from streams.tools import ui
from streams.tools.control import courses_from
from streams.tools.diff import Snapshot, load_snapshot
from streams.tools.ui import Exit

__all__ = [
    "Change",
    "CourseShadow",
    "Nightly",
    "Period",
    "changes_of",
    "command",
    "periods",
]

ADDITIONS = {CommandKind.ENROL, CommandKind.REACTIVATE, CommandKind.CHANGE_ROLE}


# -- the period: the shadow topic against the nightly run -----------------------------------------
@dataclass(frozen=True, slots=True)
class Nightly:
    """When the nightly Database-method sync runs (local time), and whether it removes."""

    at: time
    tz: tzinfo
    removes: bool = True  # unenrolaction keep (1): it never acts on a removal

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.tz)
        run = datetime.combine(local.date(), self.at, tzinfo=self.tz)
        if run <= local:
            run = datetime.combine(local.date() + timedelta(days=1), self.at, tzinfo=self.tz)
        return run.astimezone(UTC)

    def describe(self) -> str:
        removes = "" if self.removes else ", never removes (unenrolaction keep)"
        return f"nightly run {self.at:%H:%M} {self.tz}{removes}"


@dataclass(frozen=True, slots=True)
class Change:
    """One difference the shadow topic recorded: a would-be command (``dry_run``), or a
    removal the guard would have held, or a change parked (user not in Moodle)."""

    course: str
    user: str
    kind: CommandKind
    outcome: Outcome
    committed: datetime | None  # the APOGÉE (or CSV) change behind it
    streamed: datetime  # when the worker would have sent it
    nightly: datetime | None  # when the nightly run would have acted (None: never)

    @property
    def stream_s(self) -> float | None:
        return None if self.committed is None else (self.streamed - self.committed).total_seconds()

    @property
    def nightly_s(self) -> float | None:
        if self.committed is None or self.nightly is None:
            return None
        return (self.nightly - self.committed).total_seconds()

    @property
    def earlier_s(self) -> float | None:
        """How much earlier the streaming path would have acted (None: it would not have
        acted, or the nightly run never does)."""
        if self.nightly is None or self.outcome is not Outcome.DRY_RUN:
            return None
        return (self.nightly - self.streamed).total_seconds()

    def as_json(self) -> dict[str, object]:
        return {
            "course": self.course,
            "user": self.user,
            "kind": self.kind.value,
            "outcome": self.outcome.value,
            "committed": self.committed.isoformat() if self.committed else None,
            "streamed": self.streamed.isoformat(),
            "nightly": self.nightly.isoformat() if self.nightly else None,
            "earlier_s": self.earlier_s,
        }


def _committed(record: AuditRecord) -> datetime | None:
    stamps = [
        f.provenance[0].committed_ms
        for f in record.command.facts
        if f.provenance and f.provenance[0].committed_ms is not None
    ]
    return datetime.fromtimestamp(max(stamps) / 1000, UTC) if stamps else None


def changes_of(records: Iterable[AuditRecord], nightly: Nightly) -> list[Change]:
    """One change per (course, user, kind, outcome) and source change, the first time the worker
    said it (a restarted worker says its pending would-be changes again)."""
    first: dict[tuple[str, str, CommandKind, Outcome, datetime | None], Change] = {}
    for record in records:
        if record.outcome not in (Outcome.DRY_RUN, Outcome.HELD, Outcome.PARKED):
            continue
        command = record.command
        committed = _committed(record)
        removal = command.kind not in ADDITIONS
        acts = committed is not None and (nightly.removes or not removal)
        change = Change(
            command.course,
            command.user,
            command.kind,
            record.outcome,
            committed,
            record.at,
            nightly.next_after(committed) if acts and committed is not None else None,
        )
        key = (command.course, command.user, command.kind, record.outcome, committed)
        if key not in first or change.streamed < first[key].streamed:
            first[key] = change
    return sorted(first.values(), key=lambda c: (c.course, c.streamed, c.user))


@dataclass(frozen=True, slots=True)
class Period:
    course: str
    add: int = 0
    remove: int = 0
    held: int = 0
    parked: int = 0
    stream_p50: float | None = None
    nightly_p50: float | None = None
    earlier_p50: float | None = None
    earlier_max: float | None = None

    @property
    def changes(self) -> int:
        return self.add + self.remove

    def as_json(self) -> dict[str, object]:
        return {
            "add": self.add,
            "remove": self.remove,
            "held": self.held,
            "parked": self.parked,
            "stream_p50_s": self.stream_p50,
            "nightly_p50_s": self.nightly_p50,
            "earlier_p50_s": self.earlier_p50,
            "earlier_max_s": self.earlier_max,
        }


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def period_of(course: str, changes: Sequence[Change]) -> Period:
    sent = [c for c in changes if c.outcome is Outcome.DRY_RUN]
    earlier = [c.earlier_s for c in sent if c.earlier_s is not None]
    return Period(
        course,
        add=sum(1 for c in sent if c.kind in ADDITIONS),
        remove=sum(1 for c in sent if c.kind not in ADDITIONS),
        held=sum(1 for c in changes if c.outcome is Outcome.HELD),
        parked=sum(1 for c in changes if c.outcome is Outcome.PARKED),
        stream_p50=_median([c.stream_s for c in sent]),
        nightly_p50=_median([c.nightly_s for c in sent]),
        earlier_p50=_median(earlier),
        earlier_max=max(earlier, default=None),
    )


def periods(changes: Sequence[Change]) -> dict[str, Period]:
    by_course: dict[str, list[Change]] = {}
    for change in changes:
        by_course.setdefault(change.course, []).append(change)
    return {course: period_of(course, items) for course, items in by_course.items()}


# -- now: the worker's state and Moodle, through any method ---------------------------------------
@dataclass
class CourseShadow:
    course: str
    status: str  # checked | unknown to the reconciler | not in Moodle | unreadable: …
    moodle_course_id: int | None = None
    database_method: bool | None = None  # an enabled Database instance in the course
    comparison: Comparison | None = None
    period: Period | None = None

    def counts(self) -> dict[str, int | None]:
        return totals([self.comparison]) if self.comparison else {}

    def as_json(self, details: bool, changes: Sequence[Change] = ()) -> dict[str, object]:
        out: dict[str, object] = {
            "course": self.course,
            "status": self.status,
            "moodle_course_id": self.moodle_course_id,
            "database_method": self.database_method,
            **self.counts(),
            "period": (self.period or Period(self.course)).as_json(),
        }
        if details and self.comparison is not None:
            out["items"] = [
                {
                    "user": i.user,
                    "standing": i.standing.value,
                    "found": i.found,
                    "methods": i.methods or None,
                    "beside": i.beside,
                    "database_only": i.database_only,
                }
                for i in self.comparison.items
            ]
            out["changes"] = [c.as_json() for c in changes]
        return out


@dataclass
class Moodle:
    """What the report reads from Moodle for one course."""

    moodle_course_id: int
    database_method: bool
    seen: dict[str, Seen] = field(default_factory=dict)


async def read_moodle(gateway: MoodleGateway, course: str, meta: CourseMeta) -> Moodle | str:
    """The course's enrolments (any method) and whether a Database instance is enabled there;
    a string says why not."""
    try:
        moodle_id = meta.moodle_course_id or await gateway.course_id(course)
        if moodle_id is None:
            return "not in Moodle"
        found = await gateway.client.core_course_get_courses_by_field("id", moodle_id)
        database = bool(found) and "database" in found[0].enrollmentmethods
        roster = await gateway.roster(course, moodle_id)
    except MoodleError as exc:
        return f"unreadable: {exc}"
    seen = {f.user: Seen(f.role, not f.suspended) for f in roster.enrolments if f.user is not None}
    return Moodle(moodle_id, database, seen)


def plans_of(
    tables: CourseTables, courses: Sequence[str], policy: PlanPolicy, now: datetime
) -> dict[str, CoursePlan]:
    """``plan`` for each course as the worker would run it now: course guard, operator
    approvals and rejections, then the global guard over these courses together."""
    everywhere = tables.everywhere()
    plans: list[CoursePlan] = []
    recent = base = 0
    for course in courses:
        meta = _meta(tables, course) or CourseMeta(course)
        desired, ledger = tables.desired(course), tables.ledger(course)
        approvals = Approvals(
            {course: meta.approved_at} if meta.approved_at else {}, everywhere.approved_at
        )
        rejected = max(
            (t for t in (meta.rejected_at, everywhere.rejected_at) if t is not None), default=None
        )
        plans.append(_without_rejected(plan(desired, ledger, policy, now, approvals), rejected))
        recent += recent_removals(ledger, now - policy.guard.window)[0]
        base += owned_active(ledger)
    admitted = admit_global(
        plans, GlobalLoad(recent, base), policy, Approvals({}, everywhere.approved_at)
    )
    return {p.course: p for p in admitted}


def _without_rejected(p: CoursePlan, rejected_at: datetime | None) -> CoursePlan:
    """As the applier does: removals an operator rejected (due by then) are dropped."""
    if rejected_at is None:
        return p

    def keep(removals: tuple[PlannedRemoval, ...]) -> tuple[PlannedRemoval, ...]:
        return tuple(r for r in removals if r.due > rejected_at)

    return replace(p, removals=keep(p.removals), held=keep(p.held))


def _meta(tables: CourseTables, course: str) -> CourseMeta | None:
    raw = tables.courses_table.get(course.encode())
    return None if raw is None else decode_meta(raw)


READS_AT_ONCE = 8  # courses read from Moodle at once (the client paces and bounds the calls)


async def survey(
    snapshot: Snapshot,
    gateway: MoodleGateway,
    policy: PlanPolicy,
    now: datetime,
    methods: methods_source.Methods | None,
    progress: Callable[[int], None] | None = None,
) -> list[CourseShadow]:
    tables = snapshot.tables
    known = [c for c in snapshot.courses if _meta(tables, c) is not None]
    course_plans = plans_of(tables, known, policy, now)
    slots = asyncio.Semaphore(READS_AT_ONCE)

    async def one(course: str) -> CourseShadow:
        meta = _meta(tables, course)
        if meta is None:
            shadow = CourseShadow(course, "unknown to the reconciler")
        else:
            async with slots:
                read = await read_moodle(gateway, course, meta)
            shadow = _checked(tables, course, read, course_plans, policy, methods)
        if progress is not None:
            progress(1)
        return shadow

    return list(await asyncio.gather(*map(one, snapshot.courses)))


def _checked(
    tables: CourseTables,
    course: str,
    read: Moodle | str,
    course_plans: Mapping[str, CoursePlan],
    policy: PlanPolicy,
    methods: methods_source.Methods | None,
) -> CourseShadow:
    if isinstance(read, str):
        return CourseShadow(course, read)
    result = compare(
        tables.desired(course),
        tables.ledger(course),
        read.seen,
        course_plans[course],
        policy,
        methods_source.of_course(methods, course),
    )
    return CourseShadow(course, "checked", read.moodle_course_id, read.database_method, result)


# -- rendering ------------------------------------------------------------------------------------
NOW_HEADERS = (
    "course", "desired", "in sync", "other", "db only", "add", "beside", "missing", "extra",
    "susp.", "grace", "held", "db",
)  # fmt: skip
PERIOD_HEADERS = (
    "course", "add", "remove", "held", "parked", "stream p50", "nightly p50", "earlier p50",
    "earlier max",
)  # fmt: skip
_NOW_KEYS = (
    "desired", "in_sync", "other", "database_only", "add", "beside", "missing", "extra",
    "suspend", "grace", "held",
)  # fmt: skip


def _cell(value: int | None) -> str:
    return "?" if value is None else str(value)


def _db(flag: bool | None) -> str:
    return "-" if flag is None else ("on" if flag else "off")


def now_lines(reports: Sequence[CourseShadow], brief: bool = False) -> list[str]:
    rows: list[list[object]] = []
    for r in () if brief else reports:
        if r.comparison is None:
            rows.append([r.course, *(["-"] * len(_NOW_KEYS)), r.status])
            continue
        counts = r.counts()
        rows.append([r.course, *(_cell(counts[k]) for k in _NOW_KEYS), _db(r.database_method)])
    checked = [r.comparison for r in reports if r.comparison is not None]
    total = totals(checked)
    rows.append(["total", *(_cell(total[k]) for k in _NOW_KEYS), ""])
    return ui.render_table(NOW_HEADERS, rows, right=tuple(range(1, 12)), squeeze=0)


def period_lines(
    reports: Sequence[CourseShadow], all_changes: Sequence[Change], brief: bool = False
) -> list[str]:
    rows: list[list[object]] = []
    for r in () if brief else reports:
        p = r.period
        if p is None:
            continue
        rows.append(_period_row(r.course, p))
    rows.append(_period_row("total", period_of("total", all_changes)))
    return ui.render_table(PERIOD_HEADERS, rows, right=tuple(range(1, 9)), squeeze=0)


def _period_row(course: str, p: Period) -> list[object]:
    return [
        course,
        p.add,
        p.remove,
        p.held,
        p.parked,
        ui.fmt_duration(p.stream_p50),
        ui.fmt_duration(p.nightly_p50),
        ui.fmt_duration(p.earlier_p50),
        ui.fmt_duration(p.earlier_max),
    ]


def detail_lines(reports: Sequence[CourseShadow]) -> list[str]:
    rows = [
        [
            r.course,
            i.user,
            i.standing.value + (" (beside)" if i.beside else ""),
            i.found,
            i.methods or "?",
            "yes" if i.database_only else "",
        ]
        for r in reports
        if r.comparison is not None
        for i in r.comparison.items
    ]
    if not rows:
        return []
    headers = ("course", "user", "standing", "in Moodle", "methods", "db only")
    return ui.render_table(headers, rows, squeeze=0)


LEGEND = (
    "in sync: through the reconciler's own enrolment. other: active through another method "
    "only, left alone; db only: of the desired, active through the Database method alone "
    "(disabling it drops them; ? = methods not known). add: the plan would enrol, reactivate "
    "or change the role (beside: already active through another method). missing: not "
    "active, nothing planned (an enrolment the reconciler does not own). extra: active, not "
    "desired, not the reconciler's: never touched (what the nightly job keeps). susp./grace/"
    "held: the reconciler's own, no longer desired: suspended now, in the grace window, held "
    "by the guard. db: an enabled Database method in the course."
)


def gate_line(reports: Sequence[CourseShadow]) -> tuple[bool, str]:
    checked = [r.comparison for r in reports if r.comparison is not None]
    alone = totals(checked)["database_only"]
    if alone is None:
        return False, (
            "cut-over: methods not known (give --methods-report or --methods): cannot tell "
            "whether a desired enrolment depends on the Database method alone"
        )
    if alone:
        courses = sum(1 for c in checked if c.database_only)
        return False, (
            f"cut-over: {alone} desired enrolment(s) in {courses} course(s) held only by the "
            "Database method: do not disable it yet"
        )
    return True, (
        "cut-over: no desired enrolment is held by the Database method alone: it may be disabled"
    )


def csv_text(reports: Sequence[CourseShadow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    period_keys = list(Period("x").as_json())
    named = [f"period_{k}" for k in period_keys]  # "add" is a column of both parts
    writer.writerow(["course", "status", "database_method", *_NOW_KEYS, *named])
    for r in reports:
        counts = r.counts()
        period = (r.period or Period(r.course)).as_json()
        writer.writerow(
            [
                r.course,
                r.status,
                "" if r.database_method is None else int(r.database_method),
                *("" if counts.get(k) is None else counts[k] for k in _NOW_KEYS),
                *("" if period[k] is None else period[k] for k in period_keys),
            ]
        )
    return buffer.getvalue()


# -- reading the shadow topic ---------------------------------------------------------------------
def read_shadow(
    reader: HistoryReader,
    topic: str,
    courses: Sequence[str] | None,
    since: datetime,
    until: datetime,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[AuditRecord], list[PartitionSpan], int]:
    """The shadow records of ``courses`` (all when None) in the window; the spans read; the
    number of records that did not decode."""
    count = len(reader.partitions(topic))
    parts = None if courses is None else sorted({partition_of(c.encode(), count) for c in courses})
    wanted = None if courses is None else {c.encode() for c in courses}
    slack = timedelta(minutes=5)  # a record is produced just after its ``at``
    spans = reader.resolve(topic, ui.to_ms(since - slack), ui.to_ms(until + slack), parts)
    records: list[AuditRecord] = []
    bad = 0
    for batch in reader.batches(spans, progress):
        for message in batch:
            if wanted is not None and message.key() not in wanted:
                continue
            try:
                record = AuditRecord.model_validate_json(message.value() or b"")
            except ValidationError:
                bad += 1
                continue
            if since <= record.at <= until:
                records.append(record)
    return records, spans, bad


# -- command --------------------------------------------------------------------------------------
def _nightly(at: str, tz: str, unenrolaction: str) -> Nightly:
    try:
        hour, minute = (int(p) for p in at.split(":"))
        when = time(hour, minute)
    except ValueError:
        raise click.BadParameter(f"{at!r}: use HH:MM", param_hint="--nightly") from None
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {tz!r}", param_hint="--tz") from None
    return Nightly(when, zone, unenrolaction != "keep")


@click.command(
    name="shadow-report",
    epilog=ui.epilog(
        "a desired enrolment is held by the Database method alone, or the methods are not known",
        [
            "reconciler shadow-report --all --methods-report 7",
            "reconciler shadow-report --all --methods-report 7 --brief --since 7d",
            "reconciler shadow-report 2026-INF101 --since 3d --details",
            "reconciler shadow-report --all --methods participants.csv --nightly 02:30 --csv",
            "reconciler shadow-report --file l1.txt --since 7d --json | jq .period",
        ],
    ),
)
@methods_source.selection_options
@click.option("--since", type=ui.Moment(), default="1d", show_default=True, help="Period start.")
@click.option("--until", type=ui.Moment(), default="now", show_default=True, help="Period end.")
@click.option(
    "--nightly",
    default="02:00",
    envvar="RECONCILER_NIGHTLY_AT",
    show_default=True,
    help="Local time the Database method's sync task runs (env RECONCILER_NIGHTLY_AT).",
)
@click.option("--tz", default="Europe/Paris", show_default=True, help="Its time zone.")
@click.option(
    "--unenrolaction",
    type=click.Choice(["unenrol", "keep", "suspend", "suspendnoroles"]),
    default="suspend",
    show_default=True,
    help="The Database method's setting (keep: it never acts on a removal).",
)
@click.option("--details", is_flag=True, help="Each user that differs, and each change.")
@click.option("--brief", is_flag=True, help="The totals only, not a row per course.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per course, then total.")
@click.option("--csv", "as_csv", is_flag=True, help="One CSV row per course.")
def command(
    courses: tuple[str, ...],
    path: Path | None,
    everything: bool,
    report_id: int | None,
    methods_file: Path | None,
    since: datetime,
    until: datetime,
    nightly: str,
    tz: str,
    unenrolaction: str,
    details: bool,
    brief: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """What the reconciler would do, beside the nightly Database method, for the COURSES (or
    --file, or --all): now, the desired enrolments from APOGÉE against what Moodle holds
    through any method and what the plan would send; over the period, each would-be change
    from the shadow topic and how much earlier than the nightly run it would have been made.
    """
    names = courses_from(courses, path)
    if bool(names) == everything:
        ui.fail(Exit.USAGE, "name one or more courses (or --file), or --all (not both)")
    if as_json and as_csv:
        ui.fail(Exit.USAGE, "--json or --csv, not both")
    if report_id is not None and methods_file is not None:
        ui.fail(Exit.USAGE, "--methods-report or --methods, not both")
    schedule = _nightly(nightly, tz, unenrolaction)
    try:
        worker, kafka, topics = WorkerSettings(), KafkaSettings(), TopicNames()
        moodle = MoodleSettings.from_env()
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_ / MOODLE_"))
        return
    now = datetime.now(UTC)
    wanted = None if everything else names
    snapshot, records, spans = _read_kafka(
        kafka, worker.app_id, topics.shadow, wanted, since, until
    )
    reports, source = _read_moodle(
        moodle, worker, snapshot, now, report_id, methods_file, set(snapshot.courses)
    )
    changes = changes_of(records, schedule)
    by_course = periods(changes)
    for r in reports:
        r.period = by_course.get(r.course, Period(r.course))
    ok, gate = gate_line(reports)
    if as_json:
        for r in reports:
            ui.emit_json(r.as_json(details, [c for c in changes if c.course == r.course]))
        checked = [r.comparison for r in reports if r.comparison is not None]
        ui.emit_json(
            {
                "course": None,
                "total": True,
                **totals(checked),
                "period": period_of("total", changes).as_json(),
                "ready": ok,
            }
        )
        ui.say(gate, err=True)
    elif as_csv:
        sys.stdout.write(csv_text(reports))
        ui.say(gate, err=True)
    else:
        shown = Shown(details, brief)
        _print(reports, changes, spans, since, until, schedule, source, gate, shown)
    if any(s.expired for s in spans):
        raise SystemExit(int(Exit.EXPIRED))
    raise SystemExit(int(Exit.OK if ok else Exit.ATTENTION))


@dataclass(frozen=True, slots=True)
class Shown:
    details: bool = False  # each user that differs, each change
    brief: bool = False  # totals only


def _print(
    reports: Sequence[CourseShadow],
    changes: Sequence[Change],
    spans: Sequence[PartitionSpan],
    since: datetime,
    until: datetime,
    schedule: Nightly,
    source: str,
    gate: str,
    shown: Shown,
) -> None:
    ui.say(f"now: desired enrolments (APOGÉE) against Moodle, any method; methods: {source}")
    for line in now_lines(reports, shown.brief):
        ui.say(line)
    ui.say()
    ui.say(
        f"{ui.fmt_time(since)} → {ui.fmt_time(until)}: what the streaming path would have done "
        f"(shadow topic), against the {schedule.describe()}"
    )
    for line in period_lines(reports, changes, shown.brief):
        ui.say(line)
    expired = [s for s in spans if s.expired]
    if expired:
        ui.say(
            "the period starts before what retention kept on partition(s) "
            + ", ".join(f"{s.partition} (from offset {s.low})" for s in expired)
            + ": incomplete"
        )
    if shown.details:
        lines = detail_lines(reports)
        if lines:
            ui.say()
            for line in lines:
                ui.say(line)
        if changes:
            ui.say()
            for line in _change_lines(changes):
                ui.say(line)
    ui.say()
    ui.say(LEGEND)
    ui.say(gate)


def _change_lines(changes: Sequence[Change]) -> list[str]:
    rows = [
        [
            c.course,
            c.user,
            c.kind.value if c.outcome is Outcome.DRY_RUN else f"{c.kind.value} {c.outcome.value}",
            ui.fmt_time(c.committed),
            ui.fmt_duration(c.stream_s),
            ui.fmt_duration(c.nightly_s),
            ui.fmt_duration(c.earlier_s),
        ]
        for c in changes
    ]
    headers = ("course", "user", "change", "committed (UTC)", "stream", "nightly", "earlier")
    return ui.render_table(headers, rows, right=(4, 5, 6), squeeze=0)


def _read_kafka(
    kafka: KafkaSettings,
    app_id: str,
    topic: str,
    wanted: Sequence[str] | None,
    since: datetime,
    until: datetime,
) -> tuple[Snapshot, list[AuditRecord], list[PartitionSpan]]:
    try:
        with HistoryReader(kafka) as reader:
            with ui.progress("reading the worker's state", None) as advance:
                snapshot = load_snapshot(reader, app_id, wanted, advance)
            with ui.progress("reading the shadow topic", None) as advance:
                records, spans, _ = read_shadow(
                    reader, topic, snapshot.courses, since, until, advance
                )
    except ReadError as exc:
        ui.fail(Exit.KAFKA, f"{exc} (has a worker with RECONCILER_APP_ID={app_id} run?)")
        raise
    return snapshot, records, spans


def _read_moodle(
    moodle: MoodleSettings,
    worker: WorkerSettings,
    snapshot: Snapshot,
    now: datetime,
    report_id: int | None,
    methods_file: Path | None,
    courses: set[str],
) -> tuple[list[CourseShadow], str]:
    async def go() -> tuple[list[CourseShadow], str]:
        async with MoodleClient(moodle) as client:
            methods, source = await load_methods(client, report_id, methods_file, courses)
            gateway = MoodleGateway(client, worker.user_field, worker.role_ids)
            with ui.progress("reading Moodle", len(snapshot.courses)) as advance:
                reports = await survey(
                    snapshot, gateway, worker.plan_policy(), now, methods, advance
                )
            return reports, source

    try:
        return asyncio.run(go())
    except MoodleError as exc:
        ui.fail(Exit.MOODLE, str(exc))
        raise


async def load_methods(
    client: MoodleClient,
    report_id: int | None,
    methods_file: Path | None,
    courses: set[str] | None,
) -> tuple[methods_source.Methods | None, str]:
    """The per-enrolment methods, and a phrase saying where they came from."""
    if methods_file is not None:
        found = methods_source.from_csv(methods_file, courses)
        return found, f"{methods_file.name} ({_rows(found)} enrolment(s) of these courses)"
    if report_id is not None:
        with ui.progress("reading the methods report", None) as advance:
            found = await methods_source.from_report(client, report_id, courses, advance)
        return found, f"report {report_id} ({_rows(found)} enrolment(s) of these courses)"
    return None, "not known (core_enrol_get_enrolled_users does not say)"


def _rows(found: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> int:
    return sum(len(held) for users in found.values() for held in users.values())
