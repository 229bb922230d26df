"""``reconciler diff``: Moodle's enrolments against the reconciler's desired state and ledger.

The nightly diff, read-only and on demand, for one course, a list, or all: for each course,
what Moodle holds (``core_enrol_get_enrolled_users``, all and ``onlysuspended``) is compared
by :func:`streams.domain.drift.drift` with what the reconciler wants and what its ledger says
it did. Reported: ``missing``, ``extra``, ``wrong_status`` and ``wrong_role`` enrolments
(foreign ones — a teacher's, another method's — are never drift; enrolments neither wanted
nor known are counted as *unmanaged*). ``--repair`` sends the repair to the worker (an
``EnrolmentsObserved`` event on the course topic): the ledger takes what Moodle showed and
the course is planned again, so the repair goes through the plan, the guard and the audit
like any change; then it waits until Moodle matches (``--wait``).

Where the desired state and the ledger come from: the worker's own tables, read from their
changelog topics (``<app>-desired-changelog``, ``<app>-ledger-changelog``,
``<app>-courses-changelog``; compacted, one record per member, the values in the codec of
:mod:`streams.pipeline.codec`). A course lives on one partition of each (the one its key
hashes to), so one course costs one partition's read. This needs no running worker, works
with any number of workers, and reads exactly what a restarted worker would recover; it
lags the worker by what the worker has not flushed yet (milliseconds; faust flushes before
it commits). A worker endpoint would have to know which worker owns which course, and
would not answer while the worker is down — when a diff is most wanted.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import click
from pydantic import ValidationError

from schemas.course_events import CourseMeta
from streams.applier.gateway import MoodleGateway
from streams.domain.drift import CourseDrift, Drift, DriftKind, Observed, drift
from streams.domain.policy import PlanPolicy
from streams.kafka.producer import DeliveryError, ToolProducer
from streams.kafka.reader import HistoryReader, ReadError, partition_of
from streams.kafka.settings import KafkaSettings
from streams.moodle import MoodleClient, MoodleError, MoodleSettings
from streams.pipeline.codec import decode_meta, encode_event
from streams.pipeline.drift import observed_of, repair_event
from streams.pipeline.settings import WorkerSettings, explain
from streams.pipeline.state import SEP, CourseTables
from streams.tools import ui
from streams.tools.control import courses_from
from streams.tools.ui import Exit

__all__ = ["CourseReport", "Snapshot", "command", "compare", "load_snapshot"]


@dataclass
class Snapshot:
    """The worker's course tables as their changelogs hold them now."""

    tables: CourseTables
    courses: list[str]


def changelog(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def load_snapshot(
    reader: HistoryReader,
    app_id: str,
    courses: Sequence[str] | None,
    progress: Callable[[int], None] | None = None,
) -> Snapshot:
    """Desired, ledger and course records of ``courses`` (every course when None)."""
    topics = {t: changelog(app_id, t) for t in ("desired", "ledger", "courses")}
    count = len(reader.partitions(topics["courses"]))
    if courses is None:
        parts = None
        wanted: set[bytes] | None = None
        prefixes: tuple[bytes, ...] = ()
    else:
        parts = sorted({partition_of(c.encode(), count) for c in courses})
        wanted = {c.encode() for c in courses}
        prefixes = tuple(f"{c}{SEP}".encode() for c in courses)

    def member(key: bytes) -> bool:
        return not prefixes or key.startswith(prefixes)

    def course(key: bytes) -> bool:
        return wanted is None or key in wanted

    desired = reader.latest(topics["desired"], parts, member, progress)
    ledger = reader.latest(topics["ledger"], parts, member, progress)
    metas = reader.latest(topics["courses"], parts, course, progress)
    tables = CourseTables(desired, ledger, metas, {})
    known = sorted(k.decode() for k in metas)
    return Snapshot(tables, list(courses) if courses is not None else known)


@dataclass
class CourseReport:
    course: str
    status: str  # checked | not in Moodle | unknown to the reconciler | unreadable
    moodle_course_id: int | None = None
    result: CourseDrift | None = None
    seen: dict[str, Observed] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.result is not None and bool(self.result.items)

    def as_json(self) -> dict[str, object]:
        r = self.result
        return {
            "course": self.course,
            "status": self.status,
            "moodle_course_id": self.moodle_course_id,
            "checked": r.checked if r else 0,
            "unmanaged": r.unmanaged if r else 0,
            "drift": [_item(d) for d in (r.items if r else ())],
        }


def _item(d: Drift) -> dict[str, object]:
    return {
        "user": d.user,
        "kind": d.kind.value,
        "expected": d.expected,
        "found": d.found,
        "ledger": None
        if d.ledger is None
        else {"status": d.ledger.status.value, "since": d.ledger.since.isoformat()},
    }


def _ledger(d: Drift) -> str:
    """What the reconciler last did, and since when (UTC, month-day): ``suspended 03-10 14:02``
    (``--json`` gives the full time)."""
    held = d.ledger
    if held is None:
        return "not applied yet"
    return f"{held.status.value} {held.since.astimezone(UTC):%m-%d %H:%M}"


async def compare(
    snapshot: Snapshot,
    gateway: MoodleGateway,
    policy: PlanPolicy,
    progress: Callable[[int], None] | None = None,
) -> list[CourseReport]:
    reports = []
    for course in snapshot.courses:
        reports.append(await _course(snapshot.tables, course, gateway, policy))
        if progress is not None:
            progress(1)
    return reports


async def _course(
    tables: CourseTables, course: str, gateway: MoodleGateway, policy: PlanPolicy
) -> CourseReport:
    raw = tables.courses_table.get(course.encode())
    meta: CourseMeta | None = None if raw is None else decode_meta(raw)
    if meta is None:
        return CourseReport(course, "unknown to the reconciler")
    try:
        moodle_id = meta.moodle_course_id or await gateway.course_id(course)
        if moodle_id is None:
            return CourseReport(course, "not in Moodle")
        roster = await gateway.roster(course, moodle_id)
    except MoodleError as exc:
        return CourseReport(course, f"unreadable: {exc}")
    seen = observed_of(roster)
    result = drift(tables.desired(course), tables.ledger(course), seen, policy)
    return CourseReport(course, "checked", moodle_id, result, seen)


# -- rendering -----------------------------------------------------------------------------------
_KINDS = (DriftKind.MISSING, DriftKind.EXTRA, DriftKind.WRONG_STATUS, DriftKind.WRONG_ROLE)


def summary_lines(reports: Sequence[CourseReport]) -> list[str]:
    rows = []
    for r in reports:
        counts = [r.result.count(k) if r.result else "-" for k in _KINDS]
        checked = r.result.checked if r.result else "-"
        unmanaged = r.result.unmanaged if r.result else "-"
        note = "" if r.status == "checked" else r.status
        rows.append([r.course, checked, *counts, unmanaged, note])
    headers = ("course", "users", "missing", "extra", "wrong status", "wrong role", "unmanaged", "")
    return ui.render_table(headers, rows, right=(1, 2, 3, 4, 5, 6), squeeze=7)


def detail_lines(reports: Sequence[CourseReport]) -> list[str]:
    rows = [
        [d.course, d.user, d.kind.value, d.expected, d.found, _ledger(d)]
        for r in reports
        if r.result
        for d in r.result.items
    ]
    if not rows:
        return []
    headers = ("course", "user", "drift", "expected", "found", "ledger, since (UTC)")
    return ui.render_table(headers, rows, squeeze=5)


def totals(reports: Sequence[CourseReport]) -> str:
    items = [d for r in reports if r.result for d in r.result.items]
    by = {k: sum(1 for d in items if d.kind is k) for k in _KINDS}
    drifted = sum(1 for r in reports if r.drifted)
    unchecked = sum(1 for r in reports if r.status != "checked")
    return (
        f"{len(reports)} course(s): {drifted} with drift ("
        + ", ".join(f"{k.value} {n}" for k, n in by.items())
        + f"), {unchecked} not checked"
    )


# -- command -------------------------------------------------------------------------------------
@click.command(
    name="diff",
    epilog=ui.epilog(
        "drift found (after --repair: still there at the deadline)",
        [
            "reconciler diff 2026-INF101",
            "reconciler diff --file l1-courses.txt --json",
            "reconciler diff --all --brief",
            "reconciler diff 2026-INF101 --repair --wait 5m",
        ],
    ),
)
@click.argument("courses", nargs=-1)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--all", "everything", is_flag=True, help="Every course the reconciler knows.")
@click.option("--repair", is_flag=True, help="Converge the reconciler's own enrolments.")
@click.option("--wait", default="2m", show_default=True, help="With --repair: how long to wait.")
@click.option("--brief", is_flag=True, help="Counts per course, not each difference.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per course.")
@click.option("--by", default=getpass.getuser, show_default="current user")
def command(
    courses: tuple[str, ...],
    path: Path | None,
    everything: bool,
    repair: bool,
    wait: str,
    brief: bool,
    as_json: bool,
    by: str,
) -> None:
    """Compare Moodle's enrolments with the reconciler's desired state and ledger, for the
    COURSES (or --file, or --all): missing, extra, wrongly suspended or reactivated, wrong
    role. Foreign enrolments are never drift. --repair converges the reconciler's own
    through the worker (plan, guard and audit as usual) and waits until Moodle matches.
    """
    names = courses_from(courses, path)
    if bool(names) == everything:
        ui.fail(Exit.USAGE, "name one or more courses (or --file), or --all (not both)")
    try:
        worker, kafka = WorkerSettings(), KafkaSettings()
        moodle = MoodleSettings.from_env()
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_ / MOODLE_"))
        return
    try:
        deadline_s = (ui.parse_moment("now") - ui.parse_moment(wait)).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--wait") from None
    wanted = None if everything else names
    policy = worker.plan_policy()
    reports = _run(kafka, moodle, worker, wanted, policy)
    if repair and any(r.drifted for r in reports):
        reports = _repair(kafka, moodle, worker, reports, policy, by, deadline_s)
    if as_json:
        for report in reports:
            ui.emit_json(report.as_json())
        ui.say(totals(reports), err=True)
    else:
        for line in summary_lines(reports):
            ui.say(line)
        if not brief:
            details = detail_lines(reports)
            if details:
                ui.say()
                for line in details:
                    ui.say(line)
        ui.say()
        ui.say(totals(reports))
    raise SystemExit(int(Exit.ATTENTION if any(r.drifted for r in reports) else Exit.OK))


def _run(
    kafka: KafkaSettings,
    moodle: MoodleSettings,
    worker: WorkerSettings,
    wanted: Sequence[str] | None,
    policy: PlanPolicy,
) -> list[CourseReport]:
    app_id = worker.app_id
    try:
        with HistoryReader(kafka) as reader, ui.progress("reading the worker's state", None) as p:
            snapshot = load_snapshot(reader, app_id, wanted, p)
    except ReadError as exc:
        ui.fail(Exit.KAFKA, f"{exc} (has a worker with RECONCILER_APP_ID={app_id} run?)")
        raise

    async def go() -> list[CourseReport]:
        async with MoodleClient(moodle) as client:
            gateway = MoodleGateway(client, worker.user_field, worker.role_ids)
            with ui.progress("reading Moodle", len(snapshot.courses)) as advance:
                return await compare(snapshot, gateway, policy, advance)

    try:
        return asyncio.run(go())
    except MoodleError as exc:
        ui.fail(Exit.MOODLE, str(exc))
        raise


def _repair(
    kafka: KafkaSettings,
    moodle: MoodleSettings,
    worker: WorkerSettings,
    reports: list[CourseReport],
    policy: PlanPolicy,
    by: str,
    deadline_s: float,
) -> list[CourseReport]:
    from streams.pipeline.topics import course_events

    topic = course_events(worker.app_id)
    drifted = [r for r in reports if r.drifted and r.result is not None]
    try:
        with ToolProducer(kafka) as producer:
            for r in drifted:
                assert r.result is not None
                event = repair_event(r.course, r.result.items, r.seen, f"diff --repair ({by})")
                producer.send(topic, r.course.encode(), encode_event(event))
    except (DeliveryError, Exception) as exc:
        ui.fail(Exit.KAFKA, f"repair not sent: {exc}")
        raise
    ui.say(f"repair sent for {len(drifted)} course(s); waiting for Moodle to match", err=True)
    names = [r.course for r in drifted]
    deadline = time.monotonic() + deadline_s
    again = drifted
    while time.monotonic() < deadline:
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        again = _run(kafka, moodle, worker, names, policy)
        if not any(r.drifted for r in again):
            break
    fixed = {r.course: r for r in again}
    return [fixed.get(r.course, r) for r in reports]
