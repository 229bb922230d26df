"""``reconciler cutover``: let the reconciler enrol beside the Database method's enrolments.

When the worker first touches a course it records every enrolment already there as foreign
(never touched): a teacher's, and also those the nightly Database method (``enrol_database``)
made. A desired student the Database method holds would then never get the reconciler's own
enrolment, and disabling the Database method would drop them. ``core_enrol_get_enrolled_users``
cannot tell the two apart (no method per user, moodle-ws.md §4); Moodle's custom report on the
*Course participants* source can (:mod:`streams.tools.methods`).

This command reads that report (``--methods-report ID``, or ``--methods FILE`` downloaded as
CSV) and the worker's ledger (its changelog, as ``reconciler diff`` does), and sends, for each
adopted course where it changes something, an
:class:`~schemas.course_events.EnrolmentMethodsFound` event on the course topic. The course
agent (:mod:`streams.pipeline.cutover`) drops the foreign entries of the users the Database
method holds alone — the plan then enrols the desired ones through the manual instance,
beside their Database enrolment (harmless: grades belong to the user in the course, not to the
enrolment) — and records the manual enrolments it did not make as foreign (a teacher's:
``enrol_manual_enrol_users`` would *update* that very enrolment, so it is never sent for them).

In shadow mode the worker only says it would enrol them (the shadow topic, and the
``add``/``beside`` columns of ``reconciler shadow-report``); with writes on it does. Running the
command again sends nothing for a course already done (idempotent). A course the worker has not
adopted yet is skipped and said so: its adoption would record the enrolments as foreign again.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import ValidationError

from schemas.course_events import EnrolmentMethodsFound, ForeignEnrolment
from schemas.enrolment import EnrolmentTuple
from streams.applier.gateway import MoodleGateway, Roster
from streams.domain.cutover import UserMethods, split
from streams.domain.desired import present
from streams.domain.policy import PlanPolicy
from streams.kafka.producer import DeliveryError, ToolProducer
from streams.kafka.reader import HistoryReader, ReadError
from streams.kafka.settings import KafkaSettings
from streams.moodle import MoodleClient, MoodleError, MoodleSettings
from streams.pipeline.codec import encode_event
from streams.pipeline.settings import WorkerSettings, explain
from streams.pipeline.state import CourseTables
from streams.tools import methods as methods_source
from streams.tools import ui
from streams.tools.control import courses_from
from streams.tools.diff import Snapshot, load_snapshot
from streams.tools.shadow_report import load_methods
from streams.tools.ui import Exit

__all__ = ["Finding", "command", "finding", "manual_found"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One course: what the cut-over changes in the worker's ledger."""

    course: str
    status: str  # "sent" | "nothing to do" | "not adopted yet" | "dry run"
    database_only: int = 0  # users the Database method holds alone (no manual enrolment)
    released: tuple[str, ...] = ()  # of them, foreign in the ledger: dropped
    desired: int = 0  # of the released, desired: the plan enrols them beside
    manual: tuple[str, ...] = ()  # manual enrolments not the reconciler's, new to the ledger

    @property
    def changes(self) -> bool:
        return bool(self.released or self.manual)

    def as_json(self) -> dict[str, object]:
        return {
            "course": self.course,
            "status": self.status,
            "database_only": self.database_only,
            "released": list(self.released),
            "enrol_beside": self.desired,
            "manual_recorded": list(self.manual),
        }


def finding(
    tables: CourseTables,
    course: str,
    methods: Mapping[str, UserMethods],
    policy: PlanPolicy,
) -> Finding:
    """What the cut-over would change in ``course`` (pure over the tables read)."""
    meta = tables.meta(course)
    if meta is None or meta.moodle_course_id is None:
        return Finding(course, "not adopted yet")
    ledger = tables.ledger(course)
    found = split(methods, ledger)
    released = tuple(
        u for u in found.database_only if u in ledger.entries and not ledger.entries[u].owned
    )
    wanted = present(tables.desired(course), policy.role_precedence)
    manual = tuple(u for u in found.manual if u not in ledger.entries)
    return Finding(
        course,
        "nothing to do" if not (released or manual) else "to send",
        len(found.database_only),
        released,
        sum(1 for u in released if u in wanted),
        manual,
    )


def manual_found(roster: Roster, users: Sequence[str]) -> tuple[ForeignEnrolment, ...]:
    """The manual enrolments of ``users`` as Moodle shows them (role, suspended, id)."""
    wanted = set(users)
    return tuple(
        ForeignEnrolment(f.user, EnrolmentTuple(f.role, 0, 0, f.suspended), f.moodle_user_id)
        for f in roster.enrolments
        if f.user is not None and f.user in wanted
    )


HEADERS = ("course", "db only", "released", "enrol beside", "manual kept", "status")


def table_lines(findings: Sequence[Finding]) -> list[str]:
    rows: list[list[object]] = [
        [f.course, f.database_only, len(f.released), f.desired, len(f.manual), f.status]
        for f in findings
    ]
    rows.append(
        [
            "total",
            sum(f.database_only for f in findings),
            sum(len(f.released) for f in findings),
            sum(f.desired for f in findings),
            sum(len(f.manual) for f in findings),
            "",
        ]
    )
    return ui.render_table(HEADERS, rows, right=(1, 2, 3, 4), squeeze=0)


@click.command(
    name="cutover",
    epilog=ui.epilog(
        "a course was not adopted yet by the worker (run again once it is)",
        [
            "reconciler cutover --all --methods-report 7 --dry-run",
            "reconciler cutover --all --methods-report 7",
            "reconciler cutover 2026-INF101 --methods participants.csv --json",
        ],
    ),
)
@methods_source.selection_options
@click.option("--dry-run", is_flag=True, help="Say what would change; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per course.")
@click.option("--by", default=getpass.getuser, show_default="current user")
def command(
    courses: tuple[str, ...],
    path: Path | None,
    everything: bool,
    report_id: int | None,
    methods_file: Path | None,
    dry_run: bool,
    as_json: bool,
    by: str,
) -> None:
    """Let the worker enrol, through its manual instance, the desired users the Database
    method (enrol_database) holds alone in the COURSES (or --file, or --all), beside their
    Database enrolment; manual enrolments it did not make stay untouched. Needs the methods
    of each enrolment: --methods-report ID or --methods FILE.
    """
    names = courses_from(courses, path)
    if bool(names) == everything:
        ui.fail(Exit.USAGE, "name one or more courses (or --file), or --all (not both)")
    if (report_id is None) == (methods_file is None):
        ui.fail(Exit.USAGE, "give --methods-report ID or --methods FILE (one of them)")
    try:
        worker, kafka = WorkerSettings(), KafkaSettings()
        moodle = MoodleSettings.from_env()
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_ / MOODLE_"))
        return
    snapshot = _snapshot(kafka, worker.app_id, None if everything else names)
    found = _survey(moodle, worker, snapshot, report_id, methods_file, by, dry_run)
    if not dry_run:
        _send(kafka, worker.app_id, found)
    findings = [f for f, _ in found]
    if as_json:
        for f in findings:
            ui.emit_json(f.as_json())
    else:
        for line in table_lines(findings):
            ui.say(line)
    pending = [f for f in findings if f.status == "not adopted yet"]
    raise SystemExit(int(Exit.ATTENTION if pending else Exit.OK))


def _snapshot(kafka: KafkaSettings, app_id: str, wanted: Sequence[str] | None) -> Snapshot:
    try:
        with HistoryReader(kafka) as reader, ui.progress("reading the worker's state", None) as p:
            return load_snapshot(reader, app_id, wanted, p)
    except ReadError as exc:
        ui.fail(Exit.KAFKA, f"{exc} (has a worker with RECONCILER_APP_ID={app_id} run?)")
        raise


def _survey(
    moodle: MoodleSettings,
    worker: WorkerSettings,
    snapshot: Snapshot,
    report_id: int | None,
    methods_file: Path | None,
    by: str,
    dry_run: bool,
) -> list[tuple[Finding, EnrolmentMethodsFound | None]]:
    policy = worker.plan_policy()

    async def go() -> list[tuple[Finding, EnrolmentMethodsFound | None]]:
        async with MoodleClient(moodle) as client:
            courses = set(snapshot.courses)
            methods, _ = await load_methods(client, report_id, methods_file, courses)
            if not methods:  # an audience without the service user, columns in another order
                ui.fail(Exit.MOODLE, "the methods report has no row for these courses")
            gateway = MoodleGateway(client, worker.user_field, worker.role_ids)
            out: list[tuple[Finding, EnrolmentMethodsFound | None]] = []
            for course in snapshot.courses:
                held = methods_source.of_course(methods, course) or {}
                f = finding(snapshot.tables, course, held, policy)
                if not f.changes:
                    out.append((f, None))
                    continue
                manual: tuple[ForeignEnrolment, ...] = ()
                meta = snapshot.tables.meta(course)
                if f.manual and meta is not None and meta.moodle_course_id is not None:
                    roster = await gateway.roster(course, meta.moodle_course_id)
                    manual = manual_found(roster, f.manual)
                event = EnrolmentMethodsFound(
                    course=course,
                    database_only=f.released,
                    manual=manual,
                    by=f"cutover ({by})",
                    at=datetime.now(UTC),
                )
                status = "dry run" if dry_run else "sent"
                out.append((Finding(course, status, *_counts(f)), event))
            return out

    try:
        return asyncio.run(go())
    except MoodleError as exc:
        ui.fail(Exit.MOODLE, str(exc))
        raise


def _counts(f: Finding) -> tuple[int, tuple[str, ...], int, tuple[str, ...]]:
    return f.database_only, f.released, f.desired, f.manual


def _send(
    kafka: KafkaSettings, app_id: str, found: list[tuple[Finding, EnrolmentMethodsFound | None]]
) -> None:
    from streams.pipeline.topics import course_events

    topic = course_events(app_id)
    events = [e for _, e in found if e is not None]
    if not events:
        return
    try:
        with ToolProducer(kafka) as producer:
            for event in events:
                producer.send(topic, event.course.encode(), encode_event(event))
    except (DeliveryError, Exception) as exc:
        ui.fail(Exit.KAFKA, f"not sent: {exc}")
        raise
    ui.say(f"sent to {len(events)} course(s) on {topic}", err=True)
