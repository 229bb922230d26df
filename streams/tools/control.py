"""Operator commands: approve or reject held removals, pause or resume courses, release
enrolments from the reconciler (automatic → manual), and course-mapping rules.

Each sends records to Kafka (the worker applies them in order with the course's other
events) and waits for Kafka's acknowledgement. Exit codes: 0 sent, 2 bad arguments or
configuration, 3 Kafka refused or unreachable.
"""

from __future__ import annotations

import getpass
import json
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

__all__ = ["approve", "mapping", "pause", "reject", "release", "resume"]

EXIT_USAGE, EXIT_KAFKA = 2, 3


def _settings() -> tuple[KafkaSettings, TopicNames]:
    try:
        return KafkaSettings(), TopicNames()
    except ValidationError as exc:
        click.echo(explain(exc, "RECONCILER_"), err=True)
        sys.exit(EXIT_USAGE)


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


def _control(
    action: ControlAction,
    courses: Sequence[str],
    everywhere: bool,
    at: datetime | None,
    by: str,
    reason: str,
) -> None:
    if bool(courses) == everywhere:
        click.echo("name one or more courses, or --all (not both)", err=True)
        sys.exit(EXIT_USAGE)
    kafka, names = _settings()
    when = at.astimezone(UTC) if at else datetime.now(UTC)
    if everywhere:
        command = ControlCommand(action=action, course=None, at=when, by=by, reason=reason)
        try:
            with ToolProducer(kafka) as producer:
                parts = producer.partitions(names.control)
        except DeliveryError as exc:
            click.echo(f"not sent: {exc}", err=True)
            sys.exit(EXIT_KAFKA)
        value = command.model_dump_json().encode()
        sent = _send((names.control, b"*", value, p) for p in parts)
        click.echo(
            f"{action.value} every course (at {when.isoformat()}): sent to {sent} "
            f"partition(s) of {names.control}"
        )
        return
    records = [
        (
            names.control,
            course.encode(),
            ControlCommand(action=action, course=course, at=when, by=by, reason=reason)
            .model_dump_json()
            .encode(),
            None,
        )
        for course in courses
    ]
    sent = _send(records)
    click.echo(f"{action.value} {', '.join(courses)} (at {when.isoformat()}): {sent} sent")


def _control_command(action: ControlAction, summary: str, example: str) -> click.Command:
    @click.command(name=action.value, help=f"{summary}\n\nExample:\n\n    {example}")
    @click.argument("courses", nargs=-1)
    @click.option("--all", "everywhere", is_flag=True, help="Every course, on every worker.")
    @click.option(
        "--at",
        type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
        help="Removals due at or before this time (default: now).",
    )
    @click.option("--by", default=getpass.getuser, show_default="current user")
    @click.option("--reason", default="", help="Why (kept with the command).")
    def run(
        courses: tuple[str, ...], everywhere: bool, at: datetime | None, by: str, reason: str
    ) -> None:
        _control(action, courses, everywhere, at, by, reason)

    return run


approve = _control_command(
    ControlAction.APPROVE,
    "Let the removals held by the mass-removal guard go ahead (those due by --at).",
    "reconciler approve 2026-INF101 --reason 'end of option, checked with the secretariat'",
)
reject = _control_command(
    ControlAction.REJECT,
    "Drop the held removals (due by --at): the students stay enrolled.",
    "reconciler reject --all --reason 'bad APOGÉE export on 12/03'",
)
pause = _control_command(
    ControlAction.PAUSE,
    "Stop every Moodle call for these courses (changes keep accumulating).",
    "reconciler pause 2026-INF101 2026-INF102",
)
resume = _control_command(
    ControlAction.RESUME,
    "Resume paused courses: they converge at once.",
    "reconciler resume 2026-INF101",
)


@click.command(name="release")
@click.argument("course")
@click.option("--user", "users", multiple=True, help="Student number (repeat); default all.")
@click.option("--by", default=getpass.getuser, show_default="current user")
def release(course: str, users: tuple[str, ...], by: str) -> None:
    """Automatic → manual: the reconciler stops managing these enrolments of COURSE (all of its
    own there without --user). Moodle is not changed: they stay as plain manual enrolments and
    are never suspended or removed by the reconciler again.

    Example:

        reconciler release 2026-INF101 --user 21000001 --user 21000002
    """
    import os

    app_id = os.environ.get("RECONCILER_APP_ID", "reconciler")
    event = EnrolmentsReleased(
        course=course, users=users, everyone=not users, by=by, at=datetime.now(UTC)
    )
    from streams.pipeline.codec import encode_event

    _send([(course_events(app_id), course.encode(), encode_event(event), None)])
    what = ", ".join(users) if users else "every enrolment it owns"
    click.echo(f"released in {course}: {what}")


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
