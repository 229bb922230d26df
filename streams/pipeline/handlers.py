"""What each agent does with one record: parse, call the domain core, write, send.

Plain classes over injected tables and send functions, so the faust agents stay a few lines
of wiring and these can be tested with dicts:

* :class:`StudentView` — a CDC record → fold into the student's state → the facts that
  appeared or disappeared, routed to courses (:class:`FactsChanged` per course); anything
  that does not decode goes to the dead-letter topic with its reason.
* :class:`CourseView` — a course event → desired state, ledger or course record; tells the
  applier which course to look at.
* :meth:`CourseView.on_control` — an operator command → the course record.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from schemas.commands import CommandKind
from schemas.control import ControlAction, ControlCommand
from schemas.course_events import (
    CommandsApplied,
    CourseAdopted,
    CourseEvent,
    CourseMeta,
    EnrolmentMethodsFound,
    EnrolmentsObserved,
    EnrolmentsReleased,
    FactChange,
    FactsChanged,
    WriteInDoubt,
    WritesSent,
    WritesSettled,
)
from schemas.deadletter import DeadLetterReason, DeadLetterRecord
from streams import metrics
from streams.applier.overlay import applied_entry, foreign_entry
from streams.domain.changes import Tombstone
from streams.domain.desired import CourseChange, CourseDesired, apply_changes, route
from streams.domain.fold import Effect, fold, restate
from streams.domain.ingest import KafkaRef, Rejected, decode, table_of_topic
from streams.domain.mapping import CourseMapping
from streams.domain.policy import FoldPolicy
from streams.domain.student import StudentState, empty_student
from streams.pipeline.codec import decode_student, encode_student
from streams.pipeline.cutover import methods_found
from streams.pipeline.drift import observed
from streams.pipeline.state import SEP, CourseTables, get_raw, scan_prefix

log = logging.getLogger(__name__)

__all__ = ["AppliedSignals", "CourseView", "MappingHolder", "StudentView", "dead_letter"]

MAX_DLQ_VALUE = 512 * 1024  # the original stays on its topic; its coordinates are recorded
RECENT_STUDENTS = 2000  # decoded states kept (≈ 10 KB each)


def _now() -> datetime:
    return datetime.now(UTC)


class AppliedSignals(Protocol):
    """What the course agent tells the applier."""

    def mark(self, course: str, users: Iterable[str] | None = None) -> None: ...

    def folded(self, course: str) -> None: ...

    def sweep(self) -> int: ...

    @property
    def writer(self) -> str:
        """Whose write-ahead records are the applier's own (see :class:`WritesSent`)."""
        ...


class MappingHolder:
    """The course mapping in force; replaced as a whole when a rule changes."""

    def __init__(self, mapping: CourseMapping) -> None:
        self.mapping = mapping


def dead_letter(
    reason: DeadLetterReason,
    detail: str,
    where: KafkaRef,
    key: bytes | None,
    value: bytes | None,
) -> DeadLetterRecord:
    """The record as it came (undecodable bytes escaped, very large values cut)."""

    def text(raw: bytes | None) -> str | None:
        if raw is None:
            return None
        cut = raw[:MAX_DLQ_VALUE]
        more = f"…[{len(raw) - MAX_DLQ_VALUE} more bytes]" if len(raw) > MAX_DLQ_VALUE else ""
        return cut.decode("utf-8", "backslashreplace") + more

    return DeadLetterRecord(
        reason=reason,
        detail=detail[:4000],
        topic=where.topic,
        partition=where.partition,
        offset=where.offset,
        key=text(key),
        value=text(value),
        at=_now(),
    )


class StudentView:
    """CDC records of the three student tables, keyed by ``COD_IND``, folded per student."""

    def __init__(
        self,
        students: MutableMapping[Any, Any],
        policy: FoldPolicy,
        mapping: MappingHolder,
        emit: Callable[[FactsChanged], None],
        reject: Callable[[DeadLetterRecord], None],
    ) -> None:
        self.students = students
        self.policy = policy
        self.mapping = mapping
        self.emit = emit
        self.reject = reject
        # Other consumers of the fact effects (the cohort stage): called with each non-empty
        # list, after the courses got theirs.
        self.also: list[Callable[[list[Effect]], None]] = []
        # Decoded states of the students seen last: APOGÉE writes a student's rows together
        # (a contract is ~25 rows), and decoding the state for each was 5 % of the worker's
        # time under load. Only this agent writes the table, so the copies stay exact.
        self._recent: OrderedDict[bytes, StudentState] = OrderedDict()

    def forget_recent(self) -> None:
        """Partitions moved: another worker may write these students now."""
        self._recent.clear()

    def on_record(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        where = KafkaRef(topic, partition, offset)
        table = table_of_topic(topic)
        decoded = decode(topic, value, where)
        if isinstance(decoded, Rejected):
            self._reject(decoded.reason, decoded.detail, where, key, value, table)
            return
        if isinstance(decoded, Tombstone):
            metrics.child(metrics.CDC_EVENTS, table, "tombstone", "ignored").inc()
            return
        op = _op(value)
        try:
            folded = self._fold(decoded)
        except Exception as exc:  # a bug must not stop the stream; keep the record
            log.exception("folding %s[%d]@%d failed", topic, partition, offset)
            self._reject(
                DeadLetterReason.INVALID_ENVELOPE,
                f"processing failed: {exc!r}",
                where,
                key,
                value,
                table,
            )
            return
        changed, effects = folded
        metrics.child(metrics.CDC_EVENTS, table, op, "folded" if changed else "duplicate").inc()
        if effects:
            self._send(effects)

    def _reject(
        self,
        reason: DeadLetterReason,
        detail: str,
        where: KafkaRef,
        key: bytes | None,
        value: bytes | None,
        table: str,
    ) -> None:
        metrics.child(metrics.CDC_EVENTS, table[:40], "?", "dead_letter").inc()
        metrics.child(metrics.DEAD_LETTERS, reason.value).inc()
        self.reject(dead_letter(reason, detail, where, key, value))

    def _fold(self, changes: tuple[Any, ...]) -> tuple[bool, list[Effect]]:
        """Fold each row change: whether any changed the state, and the effects.

        A change delivered again after it was folded (a restart after a crash replays from
        the last committed offset, and the state may already hold what came after it) gives
        its effects as they stand now (``restate``): the first time round they may have been
        lost with the crash, before reaching the course topic."""
        effects: list[Effect] = []
        changed = False
        for change in changes:
            key = str(change.cod_ind).encode()
            state = self._state(key, change.cod_ind)
            new, more = fold(state, change, self.policy)
            if new is not state:
                self.students[key] = encode_student(new)
                self._remember(key, new)
                changed = True
            else:
                more = restate(state, change, self.policy)
            effects.extend(more)
        return changed, effects

    def _state(self, key: bytes, cod_ind: int) -> StudentState:
        state = self._recent.get(key)
        if state is not None:
            self._recent.move_to_end(key)
            return state
        raw = get_raw(self.students, key)
        return empty_student(cod_ind) if raw is None else decode_student(raw)

    def _remember(self, key: bytes, state: StudentState) -> None:
        self._recent[key] = state
        self._recent.move_to_end(key)
        if len(self._recent) > RECENT_STUDENTS:
            self._recent.popitem(last=False)

    def _send(self, effects: list[Effect]) -> None:
        by_course: dict[str, list[FactChange]] = defaultdict(list)
        for routed in route(effects, self.mapping.mapping):
            by_course[routed.course].append(FactChange(routed.role, routed.fact, routed.asserted))
        for course, changes in by_course.items():
            self.emit(FactsChanged(course=course, changes=tuple(changes)))
        for consumer in self.also:
            consumer(effects)

    def reroute(self, old: CourseMapping, new: CourseMapping) -> int:
        """After a mapping change: move every current fact from its old courses to its new
        ones (retract where it no longer maps, assert where it now does). Runs without
        yielding to the event loop, so no record is folded in between."""
        from streams.domain.derive import facts_of
        from streams.domain.fold import FactAsserted

        moved = 0
        for _, raw in list(self.students.items()):
            state: StudentState = decode_student(raw)
            facts = facts_of(state, self.policy)
            before = {(c.course, c.role, c.fact) for c in route(map(FactAsserted, facts), old)}
            after = {(c.course, c.role, c.fact) for c in route(map(FactAsserted, facts), new)}
            by_course: dict[str, list[FactChange]] = defaultdict(list)
            for course, role, fact in before - after:
                by_course[course].append(FactChange(role, fact, False))
            for course, role, fact in after - before:
                by_course[course].append(FactChange(role, fact, True))
            for course, changes in by_course.items():
                self.emit(FactsChanged(course=course, changes=tuple(changes)))
                moved += len(changes)
        return moved


def _op(value: bytes | None) -> str:
    """Debezium's op for the metric label, read cheaply (the envelope was already valid)."""
    if value is None:
        return "tombstone"
    at = value.find(b'"op"')
    if at < 0:
        return "?"
    quote = value.find(b'"', value.find(b":", at) + 1)
    return value[quote + 1 : quote + 2].decode("ascii", "replace") if quote > 0 else "?"


class CourseView:
    """Course events and control commands → the course-keyed tables (one writer per course)."""

    def __init__(
        self,
        tables: CourseTables,
        applier: AppliedSignals,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.tables = tables
        self.applier = applier
        self.clock = clock

    def on_event(self, event: CourseEvent) -> None:
        if isinstance(event, FactsChanged):
            self._facts(event)
        elif isinstance(event, CourseAdopted):
            self._adopted(event)
        elif isinstance(event, WritesSent):
            self._sent(event)
        elif isinstance(event, CommandsApplied):
            self._applied(event)
        elif isinstance(event, WritesSettled):
            for user in event.users:
                self.tables.settle_doubt(event.course, user, event.at, event.writer)
        elif isinstance(event, EnrolmentsObserved):
            observed(self.tables, event, self.applier)
        elif isinstance(event, EnrolmentMethodsFound):
            methods_found(self.tables, event, self.applier)
        else:
            self._released(event)

    # -- facts → desired state -----------------------------------------------------------
    def _facts(self, event: FactsChanged) -> None:
        course = event.course
        members = {(c.fact.user, c.role) for c in event.changes}
        current = {}
        for user, role in members:
            entry = self.tables.desired_entry(course, user, role)
            if entry is not None:
                current[(user, role)] = entry
        changes = [CourseChange(course, c.role, c.fact, c.asserted) for c in event.changes]
        updated = apply_changes(CourseDesired(course, current), changes, self.clock())
        changed = [e for m, e in updated.entries.items() if current.get(m) is not e]
        for entry in changed:
            self.tables.put_desired(entry)
        if self.tables.meta(course) is None:
            self.tables.put_meta(CourseMeta(course))
        if not changed:
            return
        if all(entry.present for entry in changed):  # only members added: plan just them
            self.applier.mark(course, {entry.user for entry in changed})
        else:  # a membership ended: grace window and guard need the whole course
            self.applier.mark(course)

    # -- results → ledger ----------------------------------------------------------------
    def _adopted(self, event: CourseAdopted) -> None:
        course = event.course
        for found in event.foreign:
            if self.tables.ledger_entry(course, found.user) is None:
                self.tables.put_ledger(
                    foreign_entry(course, found, event.moodle_course_id, event.at)
                )
        meta = self.tables.meta(course) or CourseMeta(course)
        self.tables.put_meta(
            replace(meta, moodle_course_id=event.moodle_course_id, adopted_at=event.at)
        )
        self.applier.folded(course)

    def _sent(self, event: WritesSent) -> None:
        """Write-ahead: in doubt until a result of this call (or a later one) is folded. Not
        a result: the course stays in flight for the applier."""
        for item in event.sent:
            self.tables.put_doubt(
                WriteInDoubt(event.course, item, event.moodle_course_id, event.at, event.writer)
            )
        if event.writer != self.applier.writer:  # another's (or this one's before a restart)
            self.applier.mark(event.course)  # its plan settles them

    def _applied(self, event: CommandsApplied) -> None:
        course = event.course
        for item in event.applied:
            command = item.command
            self.tables.settle_doubt(course, command.user, event.at, event.writer)
            old = self.tables.ledger_entry(course, command.user)
            try:
                entry = applied_entry(
                    old, command, event.at, item.moodle_user_id, event.moodle_course_id
                )
            except ValueError as exc:  # released to someone else meanwhile: not ours now
                log.warning("%s", exc)
                continue
            self.tables.put_ledger(entry)
            if command.kind in (CommandKind.SUSPEND, CommandKind.UNENROL):
                self._forget_withdrawn(course, command.user)
        self.applier.folded(course)

    def _forget_withdrawn(self, course: str, user: str) -> None:
        """The removal is done: its withdrawn desired entries have nothing left to say."""
        for key, _ in list(scan_prefix(self.tables.desired_table, f"{course}{SEP}{user}{SEP}")):
            _, _, role = key.split(SEP)
            entry = self.tables.desired_entry(course, user, role)
            if entry is not None and not entry.present:
                self.tables.drop_desired(course, user, role)

    def _released(self, event: EnrolmentsReleased) -> None:
        course = event.course
        ledger = self.tables.ledger(course)
        users = ledger.entries if event.everyone else event.users
        for user in users:
            entry = ledger.entries.get(user)
            if entry is not None and entry.owned:
                self.tables.put_ledger(replace(entry, owned=False, since=event.at))
        self.applier.mark(course)

    # -- operator commands ---------------------------------------------------------------
    def on_control(self, command: ControlCommand) -> None:
        if command.course is None:
            self.tables.put_everywhere(_controlled(self.tables.everywhere_meta(), command))
            self.applier.sweep()
            return
        meta = self.tables.meta(command.course) or CourseMeta(command.course)
        self.tables.put_meta(_controlled(meta, command))
        self.applier.mark(command.course)
        log.info("control %s on %s by %s", command.action.value, command.course, command.by)


def _controlled(meta: CourseMeta, command: ControlCommand) -> CourseMeta:
    match command.action:
        case ControlAction.APPROVE:
            return replace(meta, approved_at=command.at)
        case ControlAction.REJECT:
            return replace(meta, rejected_at=command.at)
        case ControlAction.PAUSE:
            return replace(meta, paused=True)
        case ControlAction.RESUME:
            return replace(meta, paused=False)
