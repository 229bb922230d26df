"""The applier: courses marked dirty → plans → batched Moodle calls → results to the ledger.

Level-triggered: the course agent only marks a course dirty; a cycle takes the dirty courses
(a burst of changes to one course is one plan), reads each one's desired state and ledger,
runs the pure ``plan``, lets the global guard admit the removals, and sends every command of
the cycle in as few calls as Moodle's limits allow (rows of several courses share a call).
Results go back on the course topic, where the course agent folds them into the ledger; until
then the course is *in flight* and is not planned again.

Failures never stop the loop. A transient error retries the course from its state, with
backoff; a user or course missing from Moodle, or an item Moodle rejects, is parked with a
reason and looked at again later; a course the applier touches for the first time is
*adopted*: its current enrolments are read and those the reconciler did not make are
recorded as foreign, so they are never changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind, MoodleCommand
from schemas.course_events import (
    AppliedCommand,
    CommandsApplied,
    CourseAdopted,
    CourseMeta,
    ForeignEnrolment,
    WritesSent,
    WritesSettled,
)
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry
from streams import metrics
from streams.applier.gateway import MoodleGateway
from streams.applier.overlay import Overlay, applied_entry, foreign_entry
from streams.applier.parking import Parking, ParkReason
from streams.applier.ports import CourseState, Outbox
from streams.applier.schedule import Schedule
from streams.domain.guard import PlannedRemoval
from streams.domain.ledger import CourseLedger, owned_active, recent_removals
from streams.domain.plan import CoursePlan, GlobalLoad, admit_global, plan
from streams.domain.policy import Approvals, PlanPolicy
from streams.moodle import Enrolment, ItemOutcome, MoodleError, Status, Unenrolment
from streams.moodle.errors import (
    InvalidUser,
    MoodleBug,
    NoManualInstance,
    NoPermission,
    RateLimited,
    RequestTimeout,
    RoleNotAssignable,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)

__all__ = ["Applier", "ApplierConfig"]

Scoped = tuple[str, frozenset[str] | None]
"""A course to plan, with the users to plan there (None: all of it)."""
Clock = Callable[[], float]
WallClock = Callable[[], datetime]


@dataclass(frozen=True)
class ApplierConfig:
    policy: PlanPolicy = field(default_factory=PlanPolicy)
    park_retry_s: float = 30.0
    rejected_retry_s: float = 600.0
    retry_base_s: float = 2.0
    retry_cap_s: float = 300.0
    max_courses_per_cycle: int = 500
    cycles_in_flight: int = 4
    linger_s: float = 0.05
    shadow: bool = False  # plan and read Moodle, never write


@dataclass
class _Work:
    """One command of a cycle, with the Moodle ids it needs."""

    course: str
    command: MoodleCommand
    moodle_course_id: int
    moodle_user_id: int | None = None
    role_id: int | None = None


def _wall() -> datetime:
    return datetime.now(UTC)


class Applier:
    def __init__(
        self,
        state: CourseState,
        outbox: Outbox,
        moodle: MoodleGateway,
        config: ApplierConfig,
        *,
        clock: Clock = time.monotonic,
        wall: WallClock = _wall,
    ) -> None:
        self.state = state
        self.outbox = outbox
        self.moodle = moodle
        self.config = config
        self.schedule = Schedule()
        self.parking = Parking()
        self.overlay = Overlay()
        # Shadow mode: what would have been applied, as the ledger would hold it (never folded,
        # never published): later plans see it, so a would-be enrolment is said once, and its
        # removal comes after the grace window and through the guard, as it would have.
        self.shadowing = Overlay()
        self.held: dict[str, int] = {}
        self._held_users: dict[str, set[str]] = {}
        self._load: dict[str, tuple[int, int]] = {}
        self._failures: dict[str, int] = {}
        # Writes whose outcome is unknown (course → user → the work sent): see _doubtful.
        self._doubts: dict[str, dict[str, _Work]] = {}
        # Who sends: the write-ahead records of another process (or of this one before a
        # restart) are in doubt here; this one's own are known as their calls return.
        self.writer = uuid.uuid4().hex[:12]
        # Doubts found to need nothing (see _doubtful), settled in the tables at the next send.
        self._settled: dict[str, list[str]] = {}
        self._clock = clock
        self._wall = wall
        self._slots = asyncio.Semaphore(config.cycles_in_flight)
        self._cycles: set[asyncio.Task[None]] = set()
        self._active = asyncio.Event()
        self.applied_total = 0
        self.last_apply: datetime | None = None
        self.latencies: deque[float] = deque(maxlen=10_000)  # additions, for /status

    # -- signals from the course agent ---------------------------------------------------------
    def mark(self, course: str, users: Iterable[str] | None = None) -> None:
        """Plan ``course`` soon: only ``users`` when the change only added members to it."""
        self.schedule.mark(course, users)

    def folded(self, course: str) -> None:
        """The results agent folded results the applier published for ``course``."""
        self.overlay.folded(course)

    def _meta(self, course: str) -> CourseMeta | None:
        return self.overlay.meta(course, self.state.meta(course))

    def _ledger(self, course: str) -> CourseLedger:
        return self.shadowing.ledger(self.overlay.ledger(self.state.ledger(course)))

    def _ledger_for(self, course: str, users: Iterable[str]) -> CourseLedger:
        wanted = frozenset(users)
        ledger = self.overlay.ledger(self.state.ledger_for(course, wanted), wanted)
        return self.shadowing.ledger(ledger, wanted)

    def sweep(self) -> int:
        """Plan every course this worker owns (after start or a rebalance)."""
        courses = list(self.state.courses())
        self.schedule.mark_all(courses)
        return len(courses)

    def pause(self) -> None:
        """Partitions are being revoked: start no cycle, forget what was queued."""
        self._active.clear()
        self.schedule.clear()
        self.overlay.clear()

    def resume(self) -> None:
        self._active.set()

    def forget(self, courses: Iterable[str]) -> None:
        gone = list(courses)
        self.schedule.forget(gone)
        for course in gone:
            self._doubts.pop(course, None)
            self.parking.forget_course(course)
            self.held.pop(course, None)
            self._held_users.pop(course, None)
            self._load.pop(course, None)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run cycles until cancelled; up to ``cycles_in_flight`` overlap."""
        try:
            while True:
                await self._slots.acquire()
                courses = await self._next_courses()
                task = asyncio.create_task(self._guarded(courses))
                self._cycles.add(task)
                task.add_done_callback(self._cycles.discard)
        finally:
            for task in list(self._cycles):
                task.cancel()

    async def _next_courses(self) -> list[Scoped]:
        limit = self.config.max_courses_per_cycle
        while True:
            await self._active.wait()
            now = self._clock()
            courses = self.schedule.take_scoped(now, limit)
            if courses:
                if len(courses) < limit and self.config.linger_s:
                    await asyncio.sleep(self.config.linger_s)  # let a burst gather
                    courses += self.schedule.take_scoped(self._clock(), limit - len(courses))
                return courses
            self._gauges()
            await self.schedule.wait(now, 1.0)

    async def _guarded(self, courses: list[Scoped]) -> None:
        published: set[str] = set()
        try:
            published = await self.cycle(courses)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconcile cycle failed for %d course(s); retrying later", len(courses))
            for course, _ in courses:
                self._retry_later(course)
        finally:
            del published
            for course, _ in courses:
                self.schedule.release(course)
            self._slots.release()
            self._gauges()

    # -- one cycle -----------------------------------------------------------------------------
    async def cycle(self, courses: Sequence[str | Scoped]) -> set[str]:
        """Reconcile these courses once (a course alone: all of it; with users: only them);
        returns those whose results were published."""
        now_m, now = self._clock(), self._wall()
        adopt: list[str] = []
        ready: list[tuple[str, CourseMeta, frozenset[str] | None]] = []
        for item in courses:
            course, scope = (item, None) if isinstance(item, str) else item
            meta = self._meta(course)
            if meta is None or meta.paused or self.parking.course_blocked(course, now_m):
                continue
            if meta.moodle_course_id is None:
                adopt.append(course)
            else:
                ready.append((course, meta, scope))
        published = {c for c in await asyncio.gather(*map(self._adopt, adopt)) if c}
        plans = await self._plans(ready, now)
        work = self._work(plans, {c: m for c, m, _ in ready}, now_m)
        work += self._doubtful([c for c, _, _ in ready], work, now_m)
        settled, self._settled = self._settled, {}
        await self._publish_settled(settled, now)
        await self._resolve_users(work, now_m)
        sendable = [w for w in work if w.moodle_user_id is not None and w.role_id is not None]
        published |= await self._apply(sendable, now)
        for p in plans:
            if p.next_due is not None:
                delay = (p.next_due - now).total_seconds()
                self.schedule.at(p.course, self._clock() + max(0.0, delay))
        return published

    # -- adoption ------------------------------------------------------------------------------
    async def _adopt(self, course: str) -> str | None:
        """First touch: find the course, record what is already enrolled there as foreign."""
        try:
            moodle_id = await self.moodle.course_id(course)
            if moodle_id is None:
                self._park_course(
                    course, ParkReason.COURSE_NOT_FOUND, "no course with this idnumber"
                )
                return None
            roster = await self.moodle.roster(course, moodle_id)
        except MoodleError as exc:
            log.warning("adopting %s failed: %s", course, exc)
            self._retry_later(course)
            return None
        ledger = self._ledger(course)
        foreign = tuple(
            ForeignEnrolment(
                found.user,
                EnrolmentTuple(found.role, 0, 0, found.suspended),
                found.moodle_user_id,
            )
            for found in roster.enrolments
            if found.user is not None and found.user not in ledger.entries
        )
        self.parking.unpark_course(course)
        at = self._wall()
        self.overlay.adopted(
            CourseMeta(course, moodle_id, at),
            [foreign_entry(course, found, moodle_id, at) for found in foreign],
        )
        await self.outbox.publish(
            CourseAdopted(course=course, moodle_course_id=moodle_id, foreign=foreign, at=at)
        )
        self.schedule.mark(course)  # planned in the next cycle, against the overlay
        log.info(
            "adopted %s (Moodle id %d): %d foreign enrolment(s)", course, moodle_id, len(foreign)
        )
        return course

    # -- planning ------------------------------------------------------------------------------
    async def _plans(
        self, ready: Sequence[tuple[str, CourseMeta, frozenset[str] | None]], now: datetime
    ) -> list[CoursePlan]:
        policy = self.config.policy
        everywhere = self.state.everywhere()
        plans: list[CoursePlan] = []
        partial: list[CoursePlan] = []
        for n, (course, meta, scope) in enumerate(ready):
            if n:
                # A sweep plans hundreds of courses with nothing to send, so nothing else
                # would run until the cycle ends: at 3 M enrolments, seconds without an
                # answer to /livez, an agent or a commit. Each course is planned from its
                # own entries; what runs in between changes only other courses or later reads.
                await asyncio.sleep(0)
            if scope is not None:
                partial.append(self._plan_users(course, scope, now))
                continue
            desired, ledger = self.state.desired(course), self._ledger(course)
            approvals = Approvals(
                {course: meta.approved_at} if meta.approved_at else {}, everywhere.approved_at
            )
            course_plan = plan(desired, ledger, policy, now, approvals)
            rejected = max(
                (t for t in (meta.rejected_at, everywhere.rejected_at) if t is not None),
                default=None,
            )
            plans.append(_without_rejected(course_plan, rejected))
            self._note_load(course, ledger, now)
        if any(p.removals for p in plans):  # the totals are only needed to judge removals
            load = GlobalLoad(
                sum(r for r, _ in self._load.values()), sum(b for _, b in self._load.values())
            )
            plans = list(admit_global(plans, load, policy, Approvals({}, everywhere.approved_at)))
        for p in plans:
            self._note_held(p, now)
        return plans + partial

    def _plan_users(self, course: str, users: frozenset[str], now: datetime) -> CoursePlan:
        """Plan only ``users`` of ``course``: members the last changes added (every entry of
        theirs present). Reading a few entries instead of the whole course is what keeps an
        initial load linear: a course of 200 would otherwise be decoded whole at each of its
        200 additions. Additions never wait nor pass the guard; should the plan still contain
        a removal, the whole course is planned instead."""
        desired = self.state.desired_for(course, users)
        p = plan(desired, self._ledger_for(course, users), self.config.policy, now)
        if p.removals or p.held or p.next_due is not None:
            self.schedule.mark(course)
            return CoursePlan(course, p.additions)
        return p

    def _note_load(self, course: str, ledger: CourseLedger, now: datetime) -> None:
        """The course's share of the global guard's load and population (kept current after
        each apply: a course is not planned again just because its results were folded)."""
        since = now - self.config.policy.guard.window
        self._load[course] = (recent_removals(ledger, since)[0], owned_active(ledger))

    def _note_held(self, p: CoursePlan, now: datetime) -> None:
        users = {r.command.user for r in p.held}
        before = self._held_users.get(p.course, set())
        self.held[p.course] = len(users)
        self._held_users[p.course] = users
        fresh = [r for r in p.held if r.command.user not in before]
        if fresh:
            log.warning("guard holds %d removal(s) in %s until approved", len(users), p.course)
            metrics.child(metrics.APPLIED, "suspend", "held").inc(len(fresh))
            self._audit_later(
                [AuditRecord(command=r.command, outcome=Outcome.HELD, at=now) for r in fresh]
            )

    def _work(
        self, plans: Sequence[CoursePlan], metas: dict[str, CourseMeta], now_m: float
    ) -> list[_Work]:
        work: list[_Work] = []
        for p in plans:
            moodle_course_id = metas[p.course].moodle_course_id
            assert moodle_course_id is not None
            users = {c.user for c in p.commands}
            ledger = self._ledger_for(p.course, users) if users else None
            for command in p.commands:
                if self.parking.user_blocked(p.course, command.user, now_m):
                    continue
                item = _Work(p.course, command, moodle_course_id)
                held = ledger.entries.get(command.user) if ledger else None
                item.moodle_user_id = (held.moodle_user_id if held else None) or (
                    self.moodle.known_user(command.user)
                )
                item.role_id = self.moodle.role_id(command.enrolment.role)
                if item.role_id is None:
                    self._park_user(
                        item,
                        ParkReason.UNKNOWN_ROLE,
                        f"role {command.enrolment.role!r} has no id in RECONCILER_ROLE_IDS",
                    )
                    continue
                work.append(item)
        return work

    def _doubtful(self, courses: Sequence[str], work: Sequence[_Work], now_m: float) -> list[_Work]:
        """Writes of unknown outcome (the call timed out or the connection broke: Moodle may
        have applied it) for users this cycle's plans leave alone: Moodle is set again to what
        the ledger says. The plan cannot see the difference — the ledger is right about what
        was confirmed, and the desired state may have come back to it meanwhile (an
        enrolment withdrawn, a removal undone): without this, Moodle would keep the unconfirmed
        change for good. Until the doubt is settled by an applied call, each cycle of the
        course re-sends it (idempotent: the full tuple).

        The doubts are this worker's (kept as the calls return) and the course's tables' (every
        write is recorded there before its call, until a result of it is folded): a worker
        killed between Moodle's answer and the result's publication, or one that lost the
        course to another, leaves them to whoever plans the course next. Only the tables'
        doubts of another writer count here: this worker knows the outcome of its own."""
        planned = {(w.course, w.command.user) for w in work}
        extra: list[_Work] = []
        for course in courses:
            doubts = self._doubts_of(course)
            users = [
                u
                for u in doubts
                if (course, u) not in planned and not self.parking.user_blocked(course, u, now_m)
            ]
            if not users:
                continue
            ledger = self._ledger_for(course, users)
            for user in users:
                item = _settling(doubts[user], ledger.entries.get(user))
                if item is None:
                    self._settled.setdefault(course, []).append(user)
                    self._doubts.get(course, {}).pop(user, None)
                else:
                    item.role_id = self.moodle.role_id(item.command.enrolment.role)
                    if item.role_id is not None:
                        extra.append(item)
        return extra

    def _doubts_of(self, course: str) -> dict[str, _Work]:
        """user → the write in doubt: the tables' (written ahead), this worker's over them."""
        doubts = {  # this applier's own writes: it knows their outcome (self._doubts)
            user: _Work(course, d.sent.command, d.moodle_course_id, d.sent.moodle_user_id)
            for user, d in self.state.doubts(course).items()
            if d.writer != self.writer
        }
        doubts.update(self._doubts.get(course, {}))
        return doubts

    async def _resolve_users(self, work: Sequence[_Work], now_m: float) -> None:
        missing = {w.command.user for w in work if w.moodle_user_id is None}
        if not missing:
            return
        try:
            found = await self.moodle.user_ids(missing)
        except MoodleError as exc:
            log.warning("user lookup failed: %s", exc)
            for course in {w.course for w in work if w.moodle_user_id is None}:
                self._retry_later(course)
            return
        for w in work:
            if w.moodle_user_id is None:
                w.moodle_user_id = found.get(w.command.user)
                if w.moodle_user_id is None:
                    self._park_user(
                        w, ParkReason.USER_NOT_FOUND, "no Moodle user with this student number"
                    )

    # -- sending -------------------------------------------------------------------------------
    async def _apply(self, work: Sequence[_Work], now: datetime) -> set[str]:
        if not work:
            return set()
        if self.config.shadow:
            await self._shadow(work)
            return set()
        await self._write_ahead(work, now)
        enrols = [w for w in work if w.command.kind is not CommandKind.UNENROL]
        unenrols = [w for w in work if w.command.kind is CommandKind.UNENROL]
        outcomes: list[tuple[_Work, ItemOutcome[object]]] = []
        enrol_out = await self.moodle.enrol([_enrol_row(w) for w in enrols])
        outcomes += zip(enrols, enrol_out, strict=True)  # type: ignore[arg-type]
        unenrol_out = await self.moodle.unenrol([_unenrol_row(w) for w in unenrols])
        outcomes += zip(unenrols, unenrol_out, strict=True)  # type: ignore[arg-type]
        applied: dict[str, list[_Work]] = {}
        not_applied: dict[str, list[str]] = {}
        records: list[AuditRecord] = []
        at = self._wall()
        for w, outcome in outcomes:
            if outcome.status is Status.APPLIED:
                self._doubts.get(w.course, {}).pop(w.command.user, None)
                applied.setdefault(w.course, []).append(w)
                records.append(self._record(w, Outcome.APPLIED, at))
            elif outcome.status is Status.REJECTED:
                records += self._rejected(w, outcome.error)
            else:
                metrics.child(metrics.APPLIED, w.command.kind.value, "deferred").inc()
                records.append(self._record(w, Outcome.RETRY, at, outcome.error))
                if _may_have_applied(outcome.error):
                    self._doubts.setdefault(w.course, {})[w.command.user] = w
                self._retry_later(w.course)
            # Moodle surely did not apply it: no longer in doubt in the tables, unless an
            # earlier write of the user still is (this worker's memory says so)
            if outcome.status is not Status.APPLIED and w.command.user not in self._doubts.get(
                w.course, {}
            ):
                not_applied.setdefault(w.course, []).append(w.command.user)
        await self._publish_settled(not_applied, at)
        for w in (w for ws in applied.values() for w in ws):
            if w.command.kind is CommandKind.CHANGE_ROLE and w.command.previous_role:
                assert w.moodle_user_id is not None
                await self.moodle.unassign(
                    w.command.previous_role, w.moodle_user_id, w.moodle_course_id
                )
        if records:
            await self.outbox.audit(records)
        for course, items in applied.items():
            self.overlay.applied(course, self._entries(course, items, at))
            await self.outbox.publish(
                CommandsApplied(
                    course=course,
                    moodle_course_id=items[0].moodle_course_id,
                    applied=tuple(AppliedCommand(w.command, w.moodle_user_id) for w in items),
                    at=at,
                    writer=self.writer,
                )
            )
            self._failures.pop(course, None)
        if applied:
            self.applied_total += sum(len(v) for v in applied.values())
            self.last_apply = at
            metrics.LAST_APPLY.set(at.timestamp())
        return set(applied)

    async def _write_ahead(self, work: Sequence[_Work], at: datetime) -> None:
        """Before any call: what is about to be sent, per course, acknowledged by Kafka. A
        worker killed between Moodle's answer and the result's publication loses nothing:
        the next owner of the course finds these writes in doubt (:meth:`_doubtful`)."""
        await self.outbox.sent(
            [
                WritesSent(
                    course=course,
                    moodle_course_id=items[0].moodle_course_id,
                    sent=tuple(AppliedCommand(w.command, w.moodle_user_id) for w in items),
                    at=at,
                    writer=self.writer,
                )
                for course, items in _by_course(work).items()
            ]
        )

    async def _publish_settled(self, users: dict[str, list[str]], at: datetime) -> None:
        """These users' writes are no longer in doubt in the course's tables."""
        for course, settled in users.items():
            await self.outbox.publish(
                WritesSettled(course=course, users=tuple(settled), at=at, writer=self.writer)
            )

    async def _shadow(self, work: Sequence[_Work]) -> None:
        """Shadow mode: what would have been sent goes to the shadow topic, and what the ledger
        would then hold to the shadowing overlay (in memory, never published): the ledger stays
        as it is, so turning shadow mode off starts from the same state."""
        at = self._wall()
        for w in work:
            metrics.child(metrics.APPLIED, w.command.kind.value, "shadow").inc()
        for course, items in _by_course(work).items():
            self.shadowing.applied(course, self._entries(course, items, at))
        await self.outbox.shadow([self._record(w, Outcome.DRY_RUN, at) for w in work])

    def _entries(self, course: str, items: list[_Work], at: datetime) -> list[LedgerEntry]:
        """What the results agent will write for these applied commands; the course's share of
        the global guard follows them (a course is not planned again when results fold)."""
        ledger = self._ledger_for(course, (w.command.user for w in items))
        entries = []
        for w in items:
            try:
                entry = applied_entry(
                    ledger.entries.get(w.command.user),
                    w.command,
                    at,
                    w.moodle_user_id,
                    w.moodle_course_id,
                )
            except ValueError:  # released to someone else meanwhile: not ours now
                continue
            entries.append(entry)
        self._note_applied(course, ledger, entries, at)
        return entries

    def _note_applied(
        self, course: str, before: CourseLedger, after: list[LedgerEntry], at: datetime
    ) -> None:
        recent, base = self._load.get(course, (0, 0))
        for entry in after:
            old = before.entries.get(entry.user)
            base += _owned_active(entry) - (old is not None and _owned_active(old))
            removed = entry.owned and entry.status is not EnrolmentStatus.ACTIVE
            was_removed = old is not None and old.owned and old.status is not EnrolmentStatus.ACTIVE
            recent += removed and entry.approved_at is None and not was_removed
        self._load[course] = (recent, base)

    def _record(
        self, w: _Work, outcome: Outcome, at: datetime, error: MoodleError | None = None
    ) -> AuditRecord:
        kind = w.command.kind
        function = (
            "enrol_manual_unenrol_users"
            if kind is CommandKind.UNENROL
            else "enrol_manual_enrol_users"
        )
        latency = _latency(w.command, at) if outcome is Outcome.APPLIED else None
        if latency is not None:
            change = "remove" if kind in (CommandKind.SUSPEND, CommandKind.UNENROL) else "add"
            metrics.child(metrics.COMMIT_TO_APPLIED, change).observe(latency)
            if change == "add":
                self.latencies.append(latency)
        if outcome is Outcome.APPLIED:
            metrics.child(metrics.APPLIED, kind.value, "applied").inc()
        return AuditRecord.model_construct(  # from validated parts: no second validation
            command=w.command,
            outcome=outcome,
            at=at,
            ws_function=function,
            error_code=error.errorcode if error else None,
            message=str(error) if error else None,
            moodle_user_id=w.moodle_user_id,
            moodle_course_id=w.moodle_course_id,
            latency_s=latency,
        )

    def _rejected(self, w: _Work, error: MoodleError | None) -> list[AuditRecord]:
        reason = _reason(error)
        detail = str(error) if error else "rejected"
        metrics.child(metrics.APPLIED, w.command.kind.value, "rejected").inc()
        if reason is ParkReason.NO_MANUAL_INSTANCE:
            fresh = self._park_course(w.course, reason, detail)
        else:
            fresh = self._park_user(w, reason, detail, self.config.rejected_retry_s)
        return [self._record(w, Outcome.REJECTED, self._wall(), error)] if fresh else []

    # -- parking and retries -------------------------------------------------------------------
    def _park_course(self, course: str, reason: ParkReason, detail: str) -> bool:
        now = self._clock()
        retry = self.config.park_retry_s
        fresh = self.parking.park_course(course, reason, detail, now, retry)
        if fresh:
            log.warning("course %s parked: %s (%s)", course, reason.value, detail)
        self.schedule.at(course, now + retry)
        return fresh

    def _park_user(
        self, w: _Work, reason: ParkReason, detail: str, retry_s: float | None = None
    ) -> bool:
        now = self._clock()
        retry = retry_s or self.config.park_retry_s
        fresh = self.parking.park_user(w.course, w.command.user, reason, detail, now, retry)
        if fresh:
            log.info("%s in %s parked: %s", w.command.user, w.course, reason.value)
            metrics.child(metrics.APPLIED, w.command.kind.value, "parked").inc()
            if reason is not ParkReason.USER_NOT_FOUND:
                return fresh
            self._audit_later(
                [
                    AuditRecord(
                        command=w.command, outcome=Outcome.PARKED, at=self._wall(), message=detail
                    )
                ]
            )
        self.schedule.at(w.course, now + retry)
        return fresh

    def _retry_later(self, course: str) -> None:
        failures = self._failures.get(course, 0)
        self._failures[course] = failures + 1
        delay = min(self.config.retry_cap_s, self.config.retry_base_s * 2**failures)
        self.schedule.at(course, self._clock() + delay)

    def _audit_later(self, records: list[AuditRecord]) -> None:
        """Held and parked changes: to the audit topic, or in shadow mode to the shadow topic
        (the audit topic says what was done in Moodle; in shadow mode nothing is)."""
        send = self.outbox.shadow if self.config.shadow else self.outbox.audit
        task = asyncio.ensure_future(send(records))
        self._cycles.add(task)
        task.add_done_callback(self._cycles.discard)

    def _gauges(self) -> None:
        metrics.PENDING.set(self.schedule.pending)
        metrics.IN_FLIGHT.set(self.schedule.in_flight)
        metrics.HELD.set(sum(self.held.values()))
        counts = self.parking.counts()
        for reason in ParkReason:
            metrics.PARKED.labels(reason.value).set(counts.get(reason.value, 0))
        pacing = self.moodle.client.pacing()
        metrics.PACING_RATE.set(pacing.rate_per_s)


def _may_have_applied(error: MoodleError | None) -> bool:
    """No answer, a broken connection or an HTTP 5xx (a proxy's 502 may come after PHP
    committed): the call may have taken effect. An error Moodle itself answered (maintenance,
    a database error: the transaction was rolled back) or a proxy's 429 means it did not."""
    doubtful = (TransportError, RequestTimeout, ServerError)
    return isinstance(error, doubtful) and not isinstance(error, RateLimited)


def _by_course(work: Iterable[_Work]) -> dict[str, list[_Work]]:
    by_course: dict[str, list[_Work]] = {}
    for w in work:
        by_course.setdefault(w.course, []).append(w)
    return by_course


def _settling(sent: _Work, held: LedgerEntry | None) -> _Work | None:
    """The call that puts Moodle back to the ledger's ``held`` entry after ``sent`` had an
    unknown outcome; None when there is nothing to do (or the enrolment is not ours)."""
    if held is not None and not held.owned:
        return None
    if held is None:
        if sent.command.kind in (CommandKind.SUSPEND, CommandKind.UNENROL):
            return None
        # never confirmed: whatever the call may have created is suspended, not left active
        kind, tuple_ = CommandKind.SUSPEND, sent.command.enrolment
    else:
        kind = {
            EnrolmentStatus.ACTIVE: CommandKind.ENROL,
            EnrolmentStatus.SUSPENDED: CommandKind.SUSPEND,
            EnrolmentStatus.UNENROLLED: CommandKind.UNENROL,
        }[held.status]
        tuple_ = held.enrolment
    if kind is not CommandKind.UNENROL:
        tuple_ = replace(tuple_, suspend=kind is CommandKind.SUSPEND)
    command = MoodleCommand(kind, sent.course, sent.command.user, tuple_, None, sent.command.facts)
    user_id = (held.moodle_user_id if held else None) or sent.moodle_user_id
    return _Work(sent.course, command, sent.moodle_course_id, user_id)


def _owned_active(entry: LedgerEntry) -> int:
    return int(entry.owned and entry.status is EnrolmentStatus.ACTIVE)


def _enrol_row(w: _Work) -> Enrolment:
    assert w.moodle_user_id is not None and w.role_id is not None
    t = w.command.enrolment
    return Enrolment(
        w.moodle_user_id, w.moodle_course_id, w.role_id, t.timestart, t.timeend, t.suspend
    )


def _unenrol_row(w: _Work) -> Unenrolment:
    assert w.moodle_user_id is not None
    return Unenrolment(w.moodle_user_id, w.moodle_course_id, w.role_id)


def _reason(error: MoodleError | None) -> ParkReason:
    if isinstance(error, NoManualInstance):
        return ParkReason.NO_MANUAL_INSTANCE
    if isinstance(error, InvalidUser):
        return ParkReason.USER_REJECTED
    if isinstance(error, RoleNotAssignable):
        return ParkReason.ROLE_NOT_ASSIGNABLE
    if isinstance(error, NoPermission):
        return ParkReason.NO_PERMISSION
    if isinstance(error, MoodleBug):
        return ParkReason.MOODLE_BUG
    return ParkReason.REJECTED


def _latency(command: MoodleCommand, at: datetime) -> float | None:
    """Source commit time of the newest change behind the command → now, in seconds."""
    committed = [
        f.provenance[0].committed_ms
        for f in command.facts
        if f.provenance and f.provenance[0].committed_ms is not None
    ]
    if not committed:
        return None
    return max(0.0, at.timestamp() - max(committed) / 1000)


def _without_rejected(p: CoursePlan, rejected_at: datetime | None) -> CoursePlan:
    """Drop removals an operator rejected (due at or before the rejection): the users stay."""
    if rejected_at is None:
        return p

    def keep(removals: tuple[PlannedRemoval, ...]) -> tuple[PlannedRemoval, ...]:
        return tuple(r for r in removals if r.due > rejected_at)

    return replace(p, removals=keep(p.removals), held=keep(p.held))
