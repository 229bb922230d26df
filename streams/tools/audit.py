"""``reconciler audit``: what was done in Moodle, when, and why, read back from the audit topic.

One command answers "why was student X suspended from course C on day D at time T?"::

    reconciler audit --student 21000042 --course 2026-INF101 --on 2026-03-10

Every record the applier wrote (schemas/audit.py) carries the command with the facts behind
it, each fact with its provenance: the APOGÉE row (table and key), its source position
(LSN/SCN, txId), the source commit time and the Kafka record it came from. This command
reads the topic with an assigned-partition reader (no group, no commits), a window in Kafka
time resolved with ``offsets_for_times``, only the course's partition when courses are named
(the topic is keyed by course), and a byte test on each record before it is parsed when
students are named (a student's history is spread over every partition).

Output (ops.md B3): a header (what was read: topic, window, per-partition offsets, whether
retention already deleted part of the window), the records in time order, each followed by
its lineage, and a footer (counts, time taken, SHA-256 of the matched records as JSON lines,
for evidence). ``--json`` prints only the records, one JSON object per line.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from confluent_kafka import Message
from pydantic import ValidationError

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from streams.kafka.reader import HistoryReader, PartitionSpan, ReadError, TopicInfo, partition_of
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.tools import ui
from streams.tools.ui import Exit

__all__ = [
    "AuditQuery",
    "AuditResult",
    "Found",
    "command",
    "lineage_lines",
    "resolve",
    "scan",
    "scan_all",
    "search",
]

SEEK_MARGIN = timedelta(minutes=5)  # a record is produced just after its ``at``


@dataclass(frozen=True)
class AuditQuery:
    students: frozenset[str] = frozenset()
    courses: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    outcomes: frozenset[Outcome] = frozenset()
    kinds: frozenset[CommandKind] = frozenset()

    def needles(self) -> tuple[bytes, ...]:
        """Byte strings one of which a matching record's JSON must contain."""
        return tuple(
            json.dumps({"user": s}, separators=(",", ":"))[1:-1].encode()
            for s in sorted(self.students)
        )

    def keys(self) -> frozenset[bytes]:
        return frozenset(c.encode() for c in self.courses)

    def matches(self, record: AuditRecord) -> bool:
        command = record.command
        return (
            (not self.students or command.user in self.students)
            and (not self.courses or command.course in self.courses)
            and (self.since is None or record.at >= self.since)
            and (self.until is None or record.at <= self.until)
            and (not self.outcomes or record.outcome in self.outcomes)
            and (not self.kinds or command.kind in self.kinds)
        )


@dataclass(frozen=True)
class Found:
    record: AuditRecord
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None

    def as_json(self) -> dict[str, object]:
        body = self.record.model_dump(mode="json")
        body["kafka"] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
        }
        return body


@dataclass
class AuditResult:
    info: TopicInfo
    spans: list[PartitionSpan]
    found: list[Found] = field(default_factory=list)
    read: Counter[int] = field(default_factory=Counter)  # records read per partition
    undecodable: int = 0
    elapsed_s: float = 0.0

    @property
    def expired(self) -> list[PartitionSpan]:
        return [s for s in self.spans if s.expired]

    def jsonl(self) -> str:
        return "".join(json.dumps(f.as_json(), ensure_ascii=False) + "\n" for f in self.found)


def search(
    reader: HistoryReader,
    topic: str,
    query: AuditQuery,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    """Every audit record matching ``query``, in the order they were applied."""
    return scan_all(reader, resolve(reader, topic, query), query, progress)


def scan_all(
    reader: HistoryReader,
    result: AuditResult,
    query: AuditQuery,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    """:func:`scan`, in several processes when the scan is large (:func:`workers_for`)."""
    workers = workers_for(result)
    if workers > 1:
        return scan_in_processes(reader.settings, result, query, workers, progress)
    return scan(reader, result, query, progress)


def resolve(reader: HistoryReader, topic: str, query: AuditQuery) -> AuditResult:
    """What to read: the topic, and the query's window on the partitions it needs (one per
    course named, else all); an empty result to fill."""
    info = reader.topic_info(topic)
    partitions = (
        sorted({partition_of(c.encode(), info.partitions) for c in query.courses})
        if query.courses
        else None
    )
    spans = reader.resolve(
        topic,
        ui.to_ms(query.since - SEEK_MARGIN) if query.since else None,
        ui.to_ms(query.until + SEEK_MARGIN) if query.until else None,
        partitions,
    )
    return AuditResult(info, spans)


def _take(result: AuditResult, query: AuditQuery, message: Message, value: bytes) -> None:
    try:
        record = AuditRecord.model_validate_json(value)
    except ValidationError:
        result.undecodable += 1
        return
    if query.matches(record):
        kind, ts = message.timestamp()
        offset = int(message.offset() or 0)
        partition = int(message.partition() or 0)
        result.found.append(
            Found(record, result.info.name, partition, offset, ts if kind else None)
        )


def scan(
    reader: HistoryReader,
    result: AuditResult,
    query: AuditQuery,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    started = time.monotonic()
    needles, keys = query.needles(), query.keys()
    needle = needles[0] if len(needles) == 1 else None  # the usual case, tested without a loop
    for batch in reader.batches(result.spans, progress):
        for message in batch:  # hot path: a byte test before any parsing
            if keys and message.key() not in keys:
                continue
            value = message.value()
            if value is None:
                continue
            if needle is not None:
                if needle not in value:
                    continue
            elif needles and not any(n in value for n in needles):
                continue
            _take(result, query, message, value)
        result.read.update(m.partition() for m in batch)  # type: ignore[misc]  # C-speed count
    result.found.sort(key=lambda f: (f.record.at, f.partition, f.offset))
    result.elapsed_s += time.monotonic() - started
    return result


# -- several processes: a large scan is bound by turning Kafka records into Python objects ------
PARALLEL_FROM = 200_000  # offsets to read before processes pay their start (≈ 0.5 s each)
_counter: Any = None


def workers_for(result: AuditResult, cpus: int | None = None) -> int:
    """How many processes to scan with: one per CPU, at most one per partition; one for a
    small scan."""
    partitions = sum(1 for s in result.spans if s.size)
    if sum(s.size for s in result.spans) < PARALLEL_FROM:
        return 1
    return max(1, min(partitions, cpus or os.cpu_count() or 1))


def scan_in_processes(
    settings: KafkaSettings,
    result: AuditResult,
    query: AuditQuery,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    """:func:`scan` with the partitions shared among ``workers`` processes (spawned: the
    parent holds a librdkafka consumer, and forking its threads is unsafe)."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    spans = sorted((s for s in result.spans if s.size), key=lambda s: -s.size)
    groups: list[list[PartitionSpan]] = [[] for _ in range(workers)]
    for span in spans:  # largest first, to the least loaded
        min(groups, key=lambda g: sum(s.size for s in g)).append(span)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_share, initargs=(counter,)
    ) as pool:
        futures = [pool.submit(_scan_part, settings, result.info, g, query) for g in groups if g]
        seen = 0
        while True:
            finished = all(f.done() for f in futures)
            if progress is not None and counter.value > seen:
                progress(counter.value - seen)
                seen = counter.value
            if finished:
                break
            time.sleep(0.1)
        parts = [f.result() for f in futures]
    for part in parts:
        result.found += part.found
        result.read.update(part.read)
        result.undecodable += part.undecodable
    result.found.sort(key=lambda f: (f.record.at, f.partition, f.offset))
    return result


def _share(counter: Any) -> None:
    global _counter
    _counter = counter


def _scan_part(
    settings: KafkaSettings, info: TopicInfo, spans: list[PartitionSpan], query: AuditQuery
) -> AuditResult:
    def advance(n: int) -> None:
        with _counter.get_lock():
            _counter.value += n

    with HistoryReader(settings) as reader:
        return scan(reader, AuditResult(info, spans), query, advance)


# -- rendering -----------------------------------------------------------------------------------
def _position(ref: SourceRef) -> str:
    if ref.table == "CSV":  # streams/tools/enrol_csv.py: the line, and the batch as "tx"
        return f"line {ref.log}  batch {ref.tx}"
    parts = [f"lsn/scn {ref.log}"]
    if ref.commit_log is not None:
        parts.append(f"commit-scn {ref.commit_log}")
    if ref.tx:
        parts.append(f"tx {ref.tx}")
    if ref.snapshot:
        parts.append("snapshot")
    return "  ".join(parts)


def _kafka(ref: SourceRef) -> str:
    if ref.topic is None:
        return ""
    return f"{ref.topic}[{ref.partition}]@{ref.offset}"


def _fact(fact: MembershipFact) -> str:
    if fact.kind is FactKind.ELEMENT:
        return f"element {fact.cod_elp} of stage {fact.cod_etp} v{fact.cod_vrs_vet}, {fact.cod_anu}"
    if fact.kind is FactKind.STAGE:
        return f"stage {fact.cod_etp} v{fact.cod_vrs_vet}, {fact.cod_anu}"
    dated = " (dated)" if fact.timestart or fact.timeend else ""
    return f"manual ({fact.origin}): {fact.course} as {fact.role}{dated}"


def _epoch(seconds: int | None) -> str:
    if not seconds:
        return "-"
    return ui.fmt_time(datetime.fromtimestamp(seconds, UTC))


def lineage_lines(record: AuditRecord, indent: str = "    ") -> list[str]:
    """The why of one record: the call and its outcome, then each fact and its source rows."""
    r, c = record, record.command
    lines = []
    call = r.ws_function or "(no call)"
    where = "cohort" if call.startswith("core_cohort") else "course"
    ids = f"user id {r.moodle_user_id}, {where} id {r.moodle_course_id}"
    tuple_ = c.enrolment
    lines.append(ui.clip(f"{indent}call     {call} ({ids}), {tuple_.role}, attempt {r.attempt}"))
    if tuple_.timestart or tuple_.timeend:
        lines.append(f"{indent}dates    {_epoch(tuple_.timestart)} → {_epoch(tuple_.timeend)}")
    if r.error_code or r.message:
        lines.append(f"{indent}answer   {r.error_code or '-'}: {r.message or ''}")
    if c.approved_at is not None:
        lines.append(f"{indent}approved {ui.fmt_time(c.approved_at)} (past the mass-removal guard)")
    removal = c.kind in (CommandKind.SUSPEND, CommandKind.UNENROL)
    if not c.facts:
        lines.append(
            f"{indent}because  "
            + ("no fact supports it any more" if removal else "(no fact recorded)")
        )
    for n, fact in enumerate(c.facts):
        label = ("withdrawn" if removal else "because ") if n == 0 else "and      "
        lines.append(ui.clip(f"{indent}{label} {_fact(fact)}"))
        for i, ref in enumerate(fact.provenance):
            role = "changed by" if i == 0 else "row       "
            committed = ui.fmt_ms(ref.committed_ms)
            lines.append(ui.clip(f"{indent}  {role} {ref.table} {ref.key}, committed {committed}"))
            where = _kafka(ref)
            detail = _position(ref) + (f"  {where}" if where else "")
            lines.append(ui.clip(f"{indent}             {detail}"))
    return lines


def record_row(found: Found) -> list[str]:
    r = found.record
    return [
        ui.fmt_time(r.at),
        r.command.course,
        r.command.user,
        r.command.kind.value,
        r.outcome.value,
        ui.fmt_duration(r.latency_s),
    ]


HEADERS = ("applied (UTC)", "course", "user", "change", "outcome", "delay")


def header_lines(
    result: AuditResult, bootstrap: str, query: AuditQuery, now: datetime
) -> list[str]:
    from importlib.metadata import version

    info = result.info
    retention = (
        "forever"
        if info.retention_ms in (None, -1)
        else ui.fmt_duration((info.retention_ms or 0) / 1000)
    )
    window = f"{ui.fmt_time(query.since) if query.since else 'beginning'} → " + (
        ui.fmt_time(query.until) if query.until else "now"
    )
    who = []
    if query.students:
        who.append("student " + ", ".join(sorted(query.students)))
    if query.courses:
        who.append("course " + ", ".join(sorted(query.courses)))
    lines = [
        *ui.wrap(
            f"reconciler audit {version('apogee-moodle-reconciler')} at {ui.fmt_time(now)}"
            f" — {bootstrap}, assigned partitions, no group, no commits"
        ),
        *ui.wrap(
            f"topic {info.name}: {info.partitions} partition(s), cleanup "
            f"{info.cleanup_policy or '?'}, retention {retention}; window {window}"
            + (f"; {'; '.join(who)}" if who else "")
        ),
        "",
    ]
    rows = [
        [s.partition, s.low, s.high, s.start, s.end, "yes" if s.expired else ""]
        for s in result.spans
    ]
    lines += ui.render_table(
        ("partition", "low", "high", "start", "end", "before retention"),
        rows,
        right=(0, 1, 2, 3, 4),
    )
    return lines


def footer_lines(result: AuditResult) -> list[str]:
    digest = hashlib.sha256(result.jsonl().encode()).hexdigest()
    read = sum(result.read.values())
    per = ", ".join(f"p{p}: {n:,}" for p, n in sorted(result.read.items())) or "none"
    lines = [
        *ui.wrap(
            f"{len(result.found)} record(s) matched out of {read:,} read ({per}) "
            f"in {result.elapsed_s:.2f}s; {result.undecodable} undecodable"
        ),
        f"sha256 (matched records, JSONL): {digest}",
    ]
    if result.expired:
        parts = ", ".join(f"p{s.partition} (kept from offset {s.low})" for s in result.expired)
        lines += ui.wrap(
            f"WARNING: the window starts before the retained history on {parts}: "
            "older records were deleted by retention; this history may be incomplete."
        )
    return lines


def render(result: AuditResult, brief: bool) -> list[str]:
    lines: list[str] = []
    rows = [record_row(f) for f in result.found]
    table = ui.render_table(HEADERS, rows, right=(5,), squeeze=1)
    lines += table[:2]
    for found, line in zip(result.found, table[2:], strict=True):
        lines.append(line)
        if not brief:
            lines += lineage_lines(found.record)
    return lines


# -- command -------------------------------------------------------------------------------------
def _window(
    since: datetime | None,
    until: datetime | None,
    at: datetime | None,
    on: datetime | None,
    around: float,
) -> tuple[datetime | None, datetime | None]:
    if on is not None:
        day = on.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day, day + timedelta(days=1) - timedelta(microseconds=1)
    if at is not None:
        return at - timedelta(seconds=around), at + timedelta(seconds=around)
    return since, until


@click.command(
    name="audit",
    epilog=ui.epilog(
        "no record matched",
        [
            "reconciler audit --student 21000042 --course 2026-INF101 --on 2026-03-10",
            "reconciler audit --student 21000042 --at 2026-03-10T14:02 --around 30m",
            "reconciler audit --course 2026-INF101 --since 7d --outcome held --brief",
            "reconciler audit --since 2026-03-10T08:00 --until 2026-03-10T09:00 --json | jq .",
        ],
    ),
)
@click.option("--student", "students", multiple=True, help="Student number (repeatable).")
@click.option("--course", "courses", multiple=True, help="Course idnumber (repeatable).")
@click.option("--since", type=ui.Moment(), help="From this time (UTC unless an offset is given).")
@click.option("--until", type=ui.Moment(), help="Up to this time.")
@click.option("--on", "on", type=ui.Moment(), help="That whole day (UTC).")
@click.option("--at", "at", type=ui.Moment(), help="Around this time (see --around).")
@click.option(
    "--around", default="1h", show_default=True, help="Half-width of the --at window (30m, 2h)."
)
@click.option(
    "--outcome",
    "outcomes",
    multiple=True,
    type=click.Choice([o.value for o in Outcome]),
    help="Only these outcomes (repeatable).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice([k.value for k in CommandKind]),
    help="Only these changes (repeatable).",
)
@click.option("--brief", is_flag=True, help="One line per record, without the lineage.")
@click.option("--json", "as_json", is_flag=True, help="The records as JSON lines, nothing else.")
@click.option("--topic", help="Audit topic (default RECONCILER_TOPIC_AUDIT).")
def command(
    students: tuple[str, ...],
    courses: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    on: datetime | None,
    at: datetime | None,
    around: str,
    outcomes: tuple[str, ...],
    kinds: tuple[str, ...],
    brief: bool,
    as_json: bool,
    topic: str | None,
) -> None:
    """The history of what the reconciler did in Moodle and why: for a student, a course, a
    time window, or any mix. Each change comes with the Moodle call and its outcome, the
    delay from the APOGÉE commit, and its lineage: the facts behind it and, for each, the
    source rows (table, key, LSN/SCN, txId, commit time) and the Kafka record they came from.
    """
    try:
        half = (datetime.now(UTC) - ui.parse_moment(around)).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--around") from None
    since, until = _window(since, until, at, on, half)
    query = AuditQuery(
        frozenset(students),
        frozenset(courses),
        since,
        until,
        frozenset(Outcome(o) for o in outcomes),
        frozenset(CommandKind(k) for k in kinds),
    )
    kafka, names = _settings()
    topic = topic or names.audit
    now = datetime.now(UTC)
    try:
        with HistoryReader(kafka) as reader:
            started = time.monotonic()
            result = resolve(reader, topic, query)
            total = sum(s.size for s in result.spans)
            with ui.progress("reading audit records", total) as advance:
                result = scan_all(reader, result, query, advance)
            result.elapsed_s = time.monotonic() - started
    except ReadError as exc:
        ui.fail(Exit.KAFKA, str(exc))
        return
    if as_json:
        for found in result.found:
            ui.emit_json(found.as_json())
        for line in footer_lines(result):
            ui.say(line, err=True)
    else:
        for line in header_lines(result, kafka.bootstrap_servers, query, now):
            ui.say(line)
        ui.say()
        for line in render(result, brief):
            ui.say(line)
        ui.say()
        for line in footer_lines(result):
            ui.say(line)
    if result.expired:
        raise SystemExit(int(Exit.EXPIRED))
    raise SystemExit(int(Exit.OK if result.found else Exit.ATTENTION))


def _settings() -> tuple[KafkaSettings, TopicNames]:
    try:
        return KafkaSettings(), TopicNames()
    except ValidationError as exc:
        from streams.pipeline.settings import explain

        ui.fail(Exit.USAGE, explain(exc, "RECONCILER_"))
        raise
