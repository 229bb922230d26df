"""``reconciler replay``: the desired state as of a moment, rebuilt from the retained topics.

The CDC topics (and the course-events topic, for manual facts) are read from their
beginning up to ``--at`` (Kafka time; assigned partitions, ``offsets_for_times``, no group,
no commits), in time order across partitions, and fed through the pure core
(:class:`streams.domain.replay.Replay`: ``decode``, ``fold``, ``route``, ``apply_changes``).
It prints each course's roster (who should be enrolled, with which role) and a SHA-256
digest of it, so two replays — or a replay and Moodle — compare at a glance.

**What-if.** With another mapping (``--mapping`` rules file, ``--template``) or another
policy (``--removal``, ``--grace``, ``--paid-states``, guard thresholds), the same records are
replayed through the candidate too, and its outcome is compared with what was *applied*: the
ledger rebuilt from the audit topic's applied records up to ``--at``. ``plan`` under the
candidate policy says what the candidate would do now — enrol, reactivate, change role,
remove at once or after the grace window, hold at the guard — per course.

**Retention.** When a CDC partition's oldest retained record is not its first (retention
deleted the start of history), the rebuilt state is incomplete: the replay says so, per
partition, and exits 5. The course-events topic keeps a shorter history
(``RECONCILER_COURSE_EVENTS_DAYS``): manual facts older than that are missing, said the same way.
The mapping rules are a compacted topic (their latest version, not as of ``--at``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from pydantic import ValidationError

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind
from schemas.course_events import FactsChanged
from schemas.enrolment import EnrolmentStatus, LedgerEntry
from schemas.mapping import CourseMappingRule
from streams.domain import ledger as ledger_ops
from streams.domain.desired import CourseChange, CourseDesired, empty_desired
from streams.domain.ingest import KafkaRef
from streams.domain.ledger import CourseLedger, empty_ledger
from streams.domain.mapping import build_mapping
from streams.domain.plan import CoursePlan, plan
from streams.domain.policy import FoldPolicy, PlanPolicy, RemovalMode
from streams.domain.replay import Replay, roster, roster_digest
from streams.kafka.reader import HistoryReader, PartitionSpan, ReadError
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.pipeline.codec import decode_event
from streams.pipeline.settings import WorkerSettings, explain
from streams.pipeline.topics import course_events
from streams.tools import ui
from streams.tools.ui import Exit

__all__ = [
    "Candidate",
    "Result",
    "WhatIf",
    "command",
    "ledgers_from_audit",
    "replay",
    "spans_until",
    "what_if",
]


@dataclass(frozen=True)
class Candidate:
    """What the replay runs under: rules, templates and policies."""

    rules: tuple[CourseMappingRule, ...]
    template: str | None
    stage_template: str | None
    role: str
    fold: FoldPolicy
    policy: PlanPolicy

    def replay(self, courses: frozenset[str] | None) -> Replay:
        mapping = build_mapping(self.rules, self.template, self.stage_template, self.role)
        return Replay(mapping, self.fold, courses)


@dataclass
class Result:
    at: datetime
    spans: list[PartitionSpan]
    baseline: dict[str, CourseDesired]
    candidate: dict[str, CourseDesired] | None
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def expired(self) -> list[PartitionSpan]:
        return [s for s in self.spans if s.expired]


def spans_until(
    reader: HistoryReader, topics: Sequence[str], at: datetime, optional: Sequence[str] = ()
) -> list[PartitionSpan]:
    """Every partition of ``topics`` from its beginning to ``at``; an ``optional`` topic
    that does not exist (no manual fact was ever sent) is left out."""
    spans = [s for t in topics for s in reader.resolve(t, None, ui.to_ms(at))]
    for topic in optional:
        try:
            spans += reader.resolve(topic, None, ui.to_ms(at))
        except ReadError:
            continue
    return spans


def replay(
    reader: HistoryReader,
    spans: list[PartitionSpan],
    cdc_topics: Sequence[str],
    at: datetime,
    baseline: Candidate,
    candidate: Candidate | None,
    courses: frozenset[str] | None,
    progress: Callable[[int], None] | None = None,
) -> Result:
    """Feed the records of ``spans`` (CDC topics, and course events for manual facts) to the
    baseline (and the candidate), in time order."""
    runs = [baseline.replay(courses)] + ([candidate.replay(courses)] if candidate else [])
    counts: Counter[str] = Counter()
    cdc = set(cdc_topics)
    for message in reader.merged(spans, progress):
        topic = message.topic() or ""
        kind, ts = message.timestamp()
        moment = datetime.fromtimestamp((ts if kind else 0) / 1000, UTC)
        counts[topic] += 1
        if topic in cdc:
            where = KafkaRef(topic, int(message.partition() or 0), int(message.offset() or 0))
            for run in runs:
                run.cdc(topic, message.value(), where, moment)
        else:
            _manual(runs, message.value(), moment, counts)
    counts.update({f"fold {k}": v for k, v in runs[0].counts.items()})
    return Result(
        at,
        spans,
        runs[0].finish(),
        runs[1].finish() if candidate else None,
        counts,
    )


def _manual(
    runs: Sequence[Replay], value: bytes | None, at: datetime, counts: Counter[str]
) -> None:
    try:
        event = decode_event(value or b"")
    except ValueError:
        counts["undecodable course events"] += 1
        return
    if isinstance(event, FactsChanged):
        changes = [CourseChange(event.course, c.role, c.fact, c.asserted) for c in event.changes]
        for run in runs:
            run.manual(event.course, changes, at)


# -- what was applied, and what-if --------------------------------------------------------------
def ledgers_from_audit(
    reader: HistoryReader,
    spans: list[PartitionSpan],
    at: datetime,
    courses: frozenset[str] | None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, CourseLedger]:
    """What the reconciler had done in Moodle by ``at``: the applied audit records of
    ``spans`` folded into ledgers (its own enrolments only: foreign ones are not audited)."""
    entries: dict[str, dict[str, LedgerEntry]] = {}
    for batch in reader.batches(spans, progress):
        for message in batch:
            value = message.value()
            if value is None or b'"applied"' not in value:
                continue
            try:
                record = AuditRecord.model_validate_json(value)
            except ValidationError:
                continue
            command = record.command
            if record.outcome is not Outcome.APPLIED or record.at > at:
                continue
            if courses is not None and command.course not in courses:
                continue
            held = entries.setdefault(command.course, {})
            old = held.get(command.user)
            single = CourseLedger(command.course, {command.user: old} if old else {})
            held[command.user] = ledger_ops.apply(single, command, record.at).entries[command.user]
    return {c: CourseLedger(c, e) for c, e in entries.items()}


@dataclass(frozen=True)
class WhatIf:
    course: str
    applied_active: int
    wanted: int
    plan: CoursePlan
    waiting: int  # removals still in their grace window

    def count(self, kind: CommandKind) -> int:
        return sum(1 for c in self.plan.commands if c.kind is kind)

    @property
    def removals_now(self) -> int:
        return len(self.plan.removals)

    @property
    def differs(self) -> bool:
        return bool(self.plan.commands or self.plan.held or self.waiting)


def what_if(
    desired: dict[str, CourseDesired],
    ledgers: dict[str, CourseLedger],
    policy: PlanPolicy,
    at: datetime,
) -> list[WhatIf]:
    out = []
    for course in sorted({*desired, *ledgers}):
        d = desired.get(course) or empty_desired(course)
        led = ledgers.get(course) or empty_ledger(course)
        p = plan(d, led, policy, at)
        later = plan(d, led, policy, at + policy.grace + timedelta(seconds=1))
        waiting = max(0, len(later.removals) + len(later.held) - len(p.removals) - len(p.held))
        active = sum(
            1 for e in led.entries.values() if e.owned and e.status is EnrolmentStatus.ACTIVE
        )
        out.append(WhatIf(course, active, len(roster(d, policy.role_precedence)), p, waiting))
    return out


# -- rendering -----------------------------------------------------------------------------------
def roster_lines(desired: dict[str, CourseDesired], precedence: tuple[str, ...]) -> list[str]:
    rows = []
    for course in sorted(desired):
        members = roster(desired[course], precedence)
        roles = Counter(role for _, role in members)
        by_role = ", ".join(f"{r} {n}" for r, n in sorted(roles.items()))
        rows.append([course, len(members), by_role or "-", roster_digest(members)[:16]])
    return ui.render_table(("course", "members", "by role", "digest"), rows, right=(1,), squeeze=2)


def what_if_lines(results: Sequence[WhatIf]) -> list[str]:
    rows = [
        [
            w.course,
            w.applied_active,
            w.wanted,
            w.count(CommandKind.ENROL),
            w.count(CommandKind.REACTIVATE),
            w.count(CommandKind.CHANGE_ROLE),
            w.removals_now,
            w.waiting,
            len(w.plan.held),
        ]
        for w in results
        if w.differs
    ]
    headers = (
        "course",
        "applied",
        "wanted",
        "enrol",
        "react.",
        "role",
        "remove",
        "in grace",
        "held",
    )
    return ui.render_table(headers, rows, right=tuple(range(1, 9)), squeeze=0)


def member_lines(course: str, desired: CourseDesired, precedence: tuple[str, ...]) -> list[str]:
    rows = [[user, role] for user, role in roster(desired, precedence)]
    return [f"{course}:", *("  " + line for line in ui.render_table(("user", "role"), rows))]


def retention_lines(spans: Sequence[PartitionSpan]) -> list[str]:
    expired = [s for s in spans if s.expired]
    if not expired:
        return []
    lines = ["WARNING: history before the retained records was asked for and is gone:"]
    for s in expired:
        lines.append(
            f"  {s.topic}[{s.partition}]: records before offset {s.low} were deleted by retention"
        )
    lines.append("The state rebuilt from what is left is incomplete.")
    return lines


# -- command -------------------------------------------------------------------------------------
def _rules(
    path: Path | None, reader_rules: dict[str, CourseMappingRule]
) -> tuple[CourseMappingRule, ...]:
    if path is None:
        return tuple(reader_rules.values())
    rules = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                rules.append(CourseMappingRule.model_validate_json(line))
            except ValidationError as exc:
                raise click.BadParameter(
                    f"{path}:{number}: {exc}", param_hint="--mapping"
                ) from None
    return tuple(rules)


@click.command(
    name="replay",
    epilog=ui.epilog(
        "the what-if differs from what was applied",
        [
            "reconciler replay --at 2026-03-10T14:00 --course 2026-INF101 --members",
            "reconciler replay --at 2026-03-10 --json > rosters-0310.jsonl",
            "reconciler replay --mapping new-rules.jsonl --course 2026-INFO-L1",
            "reconciler replay --removal unenrol --grace 2h --at now",
        ],
    ),
)
@click.option("--at", "at", type=ui.Moment(), default="now", show_default=True, help="As of.")
@click.option("--course", "courses", multiple=True, help="Only these courses (repeatable).")
@click.option("--members", is_flag=True, help="List each course's members.")
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="What-if: these rules (JSON lines) instead of those in force.",
)
@click.option("--template", help="What-if: another element → course template.")
@click.option("--paid-states", help="What-if: only these payment states (e.g. P).")
@click.option(
    "--removal", type=click.Choice([m.value for m in RemovalMode]), help="What-if: removal mode."
)
@click.option("--grace", help="What-if: grace window (30m, 2h).")
@click.option("--guard-max-count", type=int, help="What-if: course guard, removals.")
@click.option("--guard-max-share", type=float, help="What-if: course guard, share.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per course.")
def command(
    at: datetime,
    courses: tuple[str, ...],
    members: bool,
    mapping_path: Path | None,
    template: str | None,
    paid_states: str | None,
    removal: str | None,
    grace: str | None,
    guard_max_count: int | None,
    guard_max_share: float | None,
    as_json: bool,
) -> None:
    """Rebuild the desired state as of --at from the retained topics (APOGÉE changes and
    manual facts) with the reconciler's own rules, and print each course's roster and its
    digest. With another mapping or policy, replay through it too and compare what it would
    do with what was applied by then (what-if).
    """
    try:
        worker, kafka, names = WorkerSettings(), KafkaSettings(), TopicNames()
    except ValidationError as exc:
        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_"))
        return
    in_force = _rules_in_force(kafka, names.mapping)
    baseline = Candidate(
        tuple(in_force.values()),
        worker.course_template,
        worker.stage_template,
        worker.default_role,
        worker.fold_policy(),
        worker.plan_policy(),
    )
    asked = (template, paid_states, removal, grace, guard_max_count, guard_max_share)
    candidate = _candidate(baseline, mapping_path, in_force, *asked)
    wanted = frozenset(courses) or None
    try:
        with HistoryReader(kafka) as reader:
            spans = spans_until(reader, names.cdc, at, optional=[course_events(worker.app_id)])
            with ui.progress("replaying", sum(s.size for s in spans)) as advance:
                result = replay(reader, spans, names.cdc, at, baseline, candidate, wanted, advance)
            ledgers: dict[str, CourseLedger] = {}
            if candidate is not None:
                ledgers, audit_spans = _applied(reader, names.audit, at, wanted)
                result.spans += audit_spans
    except ReadError as exc:
        ui.fail(Exit.KAFKA, str(exc))
        return
    raise SystemExit(int(_output(result, baseline, candidate, ledgers, members, as_json)))


def _rules_in_force(kafka: KafkaSettings, topic: str) -> dict[str, CourseMappingRule]:
    from streams.pipeline.mapping_feed import MappingFeed

    feed = MappingFeed(kafka, topic)
    try:
        return feed.load(lambda record: None)
    except RuntimeError as exc:
        ui.fail(Exit.KAFKA, str(exc))
        raise
    finally:
        feed.close()


def _applied(
    reader: HistoryReader, topic: str, at: datetime, courses: frozenset[str] | None
) -> tuple[dict[str, CourseLedger], list[PartitionSpan]]:
    spans = spans_until(reader, [], at, optional=[topic])
    with ui.progress("reading what was applied", sum(s.size for s in spans)) as advance:
        return ledgers_from_audit(reader, spans, at, courses, advance), spans


def _candidate(
    baseline: Candidate,
    mapping_path: Path | None,
    in_force: dict[str, CourseMappingRule],
    template: str | None,
    paid_states: str | None,
    removal: str | None,
    grace: str | None,
    guard_max_count: int | None,
    guard_max_share: float | None,
) -> Candidate | None:
    asked = (mapping_path, template, paid_states, removal, grace, guard_max_count, guard_max_share)
    if all(a is None for a in asked):
        return None
    policy = baseline.policy
    guard = policy.guard
    if guard_max_count is not None:
        guard = replace(guard, course_max_count=guard_max_count)
    if guard_max_share is not None:
        guard = replace(guard, course_max_share=guard_max_share)
    if grace is not None:
        try:
            window = ui.parse_moment("now") - ui.parse_moment(grace)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--grace") from None
        policy = replace(policy, grace=window)
    if removal is not None:
        policy = replace(policy, removal=RemovalMode(removal))
    fold = baseline.fold
    if paid_states is not None:
        fold = replace(fold, paid_states=frozenset(s.strip() for s in paid_states.split(",")))
    return Candidate(
        _rules(mapping_path, in_force),
        template or baseline.template,
        baseline.stage_template,
        baseline.role,
        fold,
        replace(policy, guard=guard),
    )


def _output(
    result: Result,
    baseline: Candidate,
    candidate: Candidate | None,
    ledgers: dict[str, CourseLedger],
    members: bool,
    as_json: bool,
) -> Exit:
    precedence = baseline.policy.role_precedence
    outcomes = (
        what_if(result.candidate or {}, ledgers, candidate.policy, result.at)
        if candidate is not None
        else []
    )
    read = sum(v for k, v in result.counts.items() if not k.startswith("fold"))
    fold = {k[5:]: v for k, v in result.counts.items() if k.startswith("fold ")}
    footer = (
        f"replayed {read:,} record(s) up to {ui.fmt_time(result.at)}: "
        f"{fold.get('folded', 0):,} row change(s) folded, {fold.get('duplicate', 0):,} "
        f"duplicate(s), {fold.get('tombstone', 0):,} tombstone(s), {fold.get('rejected', 0):,} "
        f"rejected; {fold.get('manual', 0):,} manual fact(s)"
    )
    if as_json:
        by_course = {w.course: w for w in outcomes}
        for course in sorted(result.baseline):
            rows = roster(result.baseline[course], precedence)
            body: dict[str, object] = {
                "course": course,
                "at": result.at.isoformat(),
                "digest": roster_digest(rows),
                "members": [list(r) for r in rows] if members else len(rows),
            }
            w = by_course.get(course)
            if w is not None:
                body["what_if"] = _what_if_json(w)
            ui.emit_json(body)
        for line in [*ui.wrap(footer), *retention_lines(result.spans)]:
            ui.say(line, err=True)
    else:
        ui.say(f"desired state as of {ui.fmt_time(result.at)} (rules in force)")
        for line in roster_lines(result.baseline, precedence):
            ui.say(line)
        if members:
            for course in sorted(result.baseline):
                ui.say()
                for line in member_lines(course, result.baseline[course], precedence):
                    ui.say(line)
        if candidate is not None:
            ui.say()
            ui.say("what-if: the candidate against what was applied by then")
            lines = what_if_lines(outcomes)
            for line in lines if len(lines) > 2 else ["(no difference)"]:
                ui.say(line)
        ui.say()
        for line in [*ui.wrap(footer), *retention_lines(result.spans)]:
            ui.say(line)
    if result.expired:
        return Exit.EXPIRED
    return Exit.ATTENTION if any(w.differs for w in outcomes) else Exit.OK


def _what_if_json(w: WhatIf) -> dict[str, object]:
    return {
        "applied_active": w.applied_active,
        "wanted": w.wanted,
        "commands": [
            {"kind": c.kind.value, "user": c.user, "role": c.enrolment.role}
            for c in w.plan.commands
        ],
        "held": [r.command.user for r in w.plan.held],
        "in_grace": w.waiting,
    }
