"""Operator commands: approve or reject held removals, pause or resume courses, release
enrolments from the reconciler (automatic → manual), freeze a course's roster, and
course-mapping rules.

Each sends records to Kafka (the worker applies them in order with the course's other
events) and waits for Kafka's acknowledgement. Courses are named as arguments, listed in a
file (``--file``, one idnumber per line, ``#`` comments), or all of them (``--all``, where it
makes sense). ``--json`` prints one JSON object per record sent. Exit codes: 0 sent, 2 bad
arguments or configuration, 3 Kafka refused or unreachable.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import ValidationError

from schemas.control import ControlAction, ControlCommand
from schemas.course_events import EnrolmentsReleased
from schemas.mapping import CourseMappingRule, CourseTarget
from streams.kafka.producer import DeliveryError, ToolProducer
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.pipeline.settings import explain
from streams.pipeline.topics import course_events
from streams.tools import ui

__all__ = ["approve", "freeze", "mapping", "pause", "reject", "release", "resume"]

EXIT_USAGE, EXIT_KAFKA = 2, 3
_EXITS = "Exit codes: 0 sent; 2 bad arguments or configuration; 3 Kafka refused or unreachable."


def _settings() -> tuple[KafkaSettings, TopicNames]:
    try:
        return KafkaSettings(), TopicNames()
    except ValidationError as exc:
        click.echo(explain(exc, "RECONCILER_"), err=True)
        sys.exit(EXIT_USAGE)


def _app_id() -> str:
    return os.environ.get("RECONCILER_APP_ID", "reconciler")


def _send(records: Iterable[tuple[str, bytes | None, bytes | None, int | None]]) -> int:
    kafka, _ = _settings()
    try:
        with ToolProducer(kafka) as producer:
            for topic, key, value, partition in records:
                producer.send(topic, key, value, partition)
        return producer.sent
    except (DeliveryError, Exception) as exc:  # librdkafka errors come in several types
        click.echo(f"not sent: {exc}", err=True)
        sys.exit(EXIT_KAFKA)


def courses_from(args: Sequence[str], path: Path | None) -> list[str]:
    """Course idnumbers from the arguments and a file (one per line, # comments), in order,
    without duplicates."""
    names = list(args)
    if path is not None:
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            name = line.split("#", 1)[0].strip()
            if name:
                names.append(name)
    return list(dict.fromkeys(names))


def _control(
    action: ControlAction,
    courses: Sequence[str],
    everywhere: bool,
    at: datetime | None,
    by: str,
    reason: str,
    cohort: bool = False,
    as_json: bool = False,
) -> None:
    if bool(courses) == everywhere:
        click.echo("name one or more courses (or --file), or --all (not both)", err=True)
        sys.exit(EXIT_USAGE)
    kafka, names = _settings()
    when = at.astimezone(UTC) if at else datetime.now(UTC)
    # a cohort's commands travel with its events (streams/pipeline/cohorts.py)
    topic = _cohort_topic() if cohort else names.control
    if everywhere:
        command = ControlCommand(action=action, course=None, at=when, by=by, reason=reason)
        try:
            with ToolProducer(kafka) as producer:
                parts = producer.partitions(topic)
        except DeliveryError as exc:
            click.echo(f"not sent: {exc}", err=True)
            sys.exit(EXIT_KAFKA)
        value = command.model_dump_json().encode()
        sent = _send((topic, b"*", value, p) for p in parts)
        if as_json:
            ui.emit_json({**command.model_dump(mode="json"), "topic": topic, "sent": sent})
            return
        click.echo(
            f"{action.value} every {'cohort' if cohort else 'course'} (at {when.isoformat()}): "
            f"sent to {sent} partition(s) of {topic}"
        )
        return
    commands = [
        ControlCommand(action=action, course=course, at=when, by=by, reason=reason)
        for course in courses
    ]
    records = [
        (topic, c.course.encode() if c.course else None, c.model_dump_json().encode(), None)
        for c in commands
    ]
    sent = _send(records)
    if as_json:
        for c in commands:
            ui.emit_json({**c.model_dump(mode="json"), "topic": topic})
        return
    listed = ", ".join(courses[:10]) + (
        f" and {len(courses) - 10} more" if len(courses) > 10 else ""
    )
    click.echo(f"{action.value} {listed} (at {when.isoformat()}): {sent} sent to {topic}")


def _cohort_topic() -> str:
    from streams.pipeline.cohorts import cohort_events

    return cohort_events(_app_id())


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _control_command(action: ControlAction, summary: str, examples: Sequence[str]) -> click.Command:
    lines = "\n".join(f"  {e}" for e in examples)

    @click.command(name=action.value, help=summary, epilog=f"\b\nExamples:\n{lines}\n\n{_EXITS}")
    @click.argument("courses", nargs=-1)
    @click.option("--file", "path", type=_FILE, help="Course idnumbers, one per line.")
    @click.option("--all", "everywhere", is_flag=True, help="Every course, on every worker.")
    @click.option(
        "--cohort", is_flag=True, help="The names are cohorts (RECONCILER_COHORT_TEMPLATE)."
    )
    @click.option(
        "--at",
        type=ui.Moment(),
        help="Removals due at or before this time (default: now).",
    )
    @click.option("--by", default=getpass.getuser, show_default="current user")
    @click.option("--reason", default="", help="Why (kept with the command).")
    @click.option("--json", "as_json", is_flag=True, help="The commands sent, as JSON lines.")
    def run(
        courses: tuple[str, ...],
        path: Path | None,
        everywhere: bool,
        cohort: bool,
        at: datetime | None,
        by: str,
        reason: str,
        as_json: bool,
    ) -> None:
        _control(action, courses_from(courses, path), everywhere, at, by, reason, cohort, as_json)

    return run


approve = _control_command(
    ControlAction.APPROVE,
    "Let the removals held by the mass-removal guard go ahead (those due by --at).",
    [
        "reconciler approve 2026-INF101 --reason 'end of option, checked with the secretariat'",
        "reconciler approve --cohort IA-2026-L1INF-1",
    ],
)
reject = _control_command(
    ControlAction.REJECT,
    "Drop the held removals (due by --at): the students stay enrolled.",
    ["reconciler reject --all --reason 'bad APOGÉE export on 12/03'"],
)
pause = _control_command(
    ControlAction.PAUSE,
    "Stop every Moodle call for these courses (changes keep accumulating).",
    ["reconciler pause 2026-INF101 2026-INF102", "reconciler pause --file archived.txt"],
)
resume = _control_command(
    ControlAction.RESUME,
    "Resume paused courses: they converge at once.",
    ["reconciler resume 2026-INF101"],
)


def _released(courses: Sequence[str], users: Sequence[str], by: str) -> list[EnrolmentsReleased]:
    now = datetime.now(UTC)
    return [
        EnrolmentsReleased(course=c, users=tuple(users), everyone=not users, by=by, at=now)
        for c in courses
    ]


def _send_released(events: Sequence[EnrolmentsReleased]) -> int:
    from streams.pipeline.codec import encode_event

    topic = course_events(_app_id())
    return _send((topic, e.course.encode(), encode_event(e), None) for e in events)


@click.command(
    name="release",
    epilog="\b\nExamples:\n"
    "  reconciler release 2026-INF101 --user 21000001 --user 21000002\n"
    "  reconciler release 2026-INF101 2026-INF102\n"
    "  reconciler release --file archived-courses.txt --json\n\n" + _EXITS,
)
@click.argument("courses", nargs=-1)
@click.option("--file", "path", type=_FILE, help="Course idnumbers, one per line.")
@click.option("--user", "users", multiple=True, help="Student number (repeat); default all.")
@click.option("--by", default=getpass.getuser, show_default="current user")
@click.option("--json", "as_json", is_flag=True, help="The events sent, as JSON lines.")
def release(
    courses: tuple[str, ...], path: Path | None, users: tuple[str, ...], by: str, as_json: bool
) -> None:
    """Automatic → manual: the reconciler stops managing these enrolments of the COURSES (all
    of its own there without --user). Moodle is not changed: they stay as plain manual
    enrolments and are never suspended or removed by the reconciler again. Students who
    become wanted later are still enrolled (see ``reconciler freeze`` to stop that too).
    """
    names = courses_from(courses, path)
    if not names:
        click.echo("name one or more courses, or --file", err=True)
        sys.exit(EXIT_USAGE)
    events = _released(names, users, by)
    sent = _send_released(events)
    if as_json:
        for event in events:
            ui.emit_json(event.model_dump(mode="json"))
        return
    what = ", ".join(users) if users else "every enrolment it owns"
    click.echo(
        f"released in {len(names)} course(s) ({', '.join(names[:5])}"
        f"{' …' if len(names) > 5 else ''}): {what}; {sent} sent"
    )


@click.command(
    name="freeze",
    epilog="\b\nExamples:\n"
    "  reconciler freeze 2025-INF101 --reason 'year closed'\n"
    "  reconciler freeze --file courses-2025.txt\n\n"
    "Undo: reconciler resume COURSE (enrolments released stay manual).\n\n" + _EXITS,
)
@click.argument("courses", nargs=-1)
@click.option("--file", "path", type=_FILE, help="Course idnumbers, one per line.")
@click.option("--by", default=getpass.getuser, show_default="current user")
@click.option("--reason", default="", help="Why (kept with the command).")
@click.option("--json", "as_json", is_flag=True, help="The records sent, as JSON lines.")
def freeze(
    courses: tuple[str, ...], path: Path | None, by: str, reason: str, as_json: bool
) -> None:
    """Freeze the COURSES' current rosters: pause them (no Moodle call any more, nobody added
    or removed) and release every enrolment the reconciler made there (they become plain
    manual enrolments, never suspended by it). For closed years and archived courses.
    """
    names = courses_from(courses, path)
    if not names:
        click.echo("name one or more courses, or --file", err=True)
        sys.exit(EXIT_USAGE)
    _, topics = _settings()
    now = datetime.now(UTC)
    pauses = [
        ControlCommand(action=ControlAction.PAUSE, course=c, at=now, by=by, reason=reason)
        for c in names
    ]
    sent = _send(
        (
            topics.control,
            p.course.encode() if p.course else None,
            p.model_dump_json().encode(),
            None,
        )
        for p in pauses
    )
    events = _released(names, (), by)
    sent += _send_released(events)
    if as_json:
        for p, e in zip(pauses, events, strict=True):
            ui.emit_json(
                {
                    "course": p.course,
                    "paused": p.model_dump(mode="json"),
                    "released": e.model_dump(mode="json"),
                }
            )
        return
    click.echo(f"frozen {len(names)} course(s): paused and released ({sent} records sent)")


@click.group(name="mapping")
def mapping() -> None:
    """Course-mapping rules (override the default template for an element or stage version)."""


@mapping.command(name="set")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A rule as JSON (schemas/json/course_mapping_rule.json).",
)
@click.option("--rule-id")
@click.option("--elp", help="Element code (COD_ELP).")
@click.option("--etp", help="Stage code (COD_ETP), with --vet.")
@click.option("--vet", type=int, help="Stage version (COD_VRS_VET).")
@click.option("--year", help="Only this year (COD_ANU).")
@click.option("--target", "targets", multiple=True, help="COURSE_TEMPLATE[:ROLE], repeatable.")
@click.option("--keep-default", is_flag=True, help="Add the targets to the default course.")
def set_rule(
    path: Path | None,
    rule_id: str | None,
    elp: str | None,
    etp: str | None,
    vet: int | None,
    year: str | None,
    targets: tuple[str, ...],
    keep_default: bool,
) -> None:
    """Add or replace a rule. The worker re-routes existing memberships at once.

    Example (two elements taught in one Moodle course):

        reconciler mapping set --rule-id inf101 --elp INF101 --target '{cod_anu}-INFO-L1'
        reconciler mapping set --rule-id inf102 --elp INF102 --target '{cod_anu}-INFO-L1'
    """
    try:
        if path is not None:
            rule = CourseMappingRule.model_validate_json(path.read_bytes())
        else:
            rule = CourseMappingRule(
                rule_id=rule_id or "",
                cod_anu=year,
                cod_elp=elp,
                cod_etp=etp,
                cod_vrs_vet=vet,
                targets=tuple(_target(t) for t in targets),
                keep_default=keep_default,
            )
    except (ValidationError, ValueError) as exc:
        click.echo(f"invalid rule: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    _, names = _settings()
    _send([(names.mapping, rule.rule_id.encode(), rule.model_dump_json().encode(), None)])
    click.echo(f"rule {rule.rule_id} set: {json.dumps(rule.model_dump(mode='json'))}")


@mapping.command(name="delete")
@click.argument("rule_id")
def delete_rule(rule_id: str) -> None:
    """Remove a rule (its element goes back to the default template).

    Example:

        reconciler mapping delete inf101
    """
    _, names = _settings()
    _send([(names.mapping, rule_id.encode(), None, None)])
    click.echo(f"rule {rule_id} deleted")


def _target(text: str) -> CourseTarget:
    course, _, role = text.partition(":")
    return CourseTarget(course=course, role=role or "student")


@mapping.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_rules(as_json: bool) -> None:
    """The rules in force (read from the compacted rules topic).

    Example:

        reconciler mapping list --json
    """
    from streams.pipeline.mapping_feed import MappingFeed

    kafka, names = _settings()
    feed = MappingFeed(kafka, names.mapping)
    try:
        rules = feed.load(lambda record: None)
    except RuntimeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_KAFKA)
    finally:
        feed.close()
    for rule in sorted(rules.values(), key=lambda r: r.rule_id):
        if as_json:
            click.echo(rule.model_dump_json())
        else:
            subject = rule.cod_elp or f"{rule.cod_etp} v{rule.cod_vrs_vet}"
            where = ", ".join(f"{t.course}:{t.role}" for t in rule.targets) or "(no course)"
            extra = " + default" if rule.keep_default else ""
            click.echo(
                f"{rule.rule_id:<20} {subject:<14} {rule.cod_anu or 'any year':<9} → {where}{extra}"
            )
