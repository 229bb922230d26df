"""Drift: Moodle read back and compared with the desired state and the ledger.

* :func:`observed_of` — a course's enrolments read through the web services, as the pure
  :func:`~streams.domain.drift.drift` wants them (shared by ``reconciler diff``).
* :func:`observed` — the course agent's part of a repair: an :class:`EnrolmentsObserved`
  event sets the ledger's owned entries to what Moodle showed, and the course is planned again
  (level-triggered: the plan, the guard and the audit do the rest).
* :class:`DriftWatch` — the worker's periodic safety net (the nightly diff, read-only and per
  course): every ``RECONCILER_DRIFT_CHECK_S`` it reads each adopted course it owns, keeps the
  differences still there ``RECONCILER_DRIFT_CONFIRM_S`` later (a change on its way to Moodle
  is not drift), sets ``reconciler_drift_enrolments{kind}`` (missing, extra, mismatched),
  logs them, and, only with
  ``RECONCILER_DRIFT_REPAIR=true``, publishes the repair.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from schemas.course_events import EnrolmentsObserved, ObservedEnrolment
from streams import metrics
from streams.applier.gateway import MoodleGateway, Roster
from streams.domain.drift import CourseDrift, Drift, DriftKind, Observed, drift, resync
from streams.domain.policy import PlanPolicy
from streams.moodle import MoodleError
from streams.pipeline.state import CourseTables, ledger_key

log = logging.getLogger(__name__)

__all__ = ["DriftWatch", "observed", "observed_of", "repair_event"]


class Marks(Protocol):
    """What the course agent tells the applier (a subset of ``AppliedSignals``)."""

    def mark(self, course: str) -> None: ...


def observed_of(roster: Roster) -> dict[str, Observed]:
    """user key → what Moodle holds; users whose key field is not visible are left out."""
    return {
        found.user: Observed(found.user, found.role, found.suspended, found.moodle_user_id)
        for found in roster.enrolments
        if found.user is not None
    }


def repair_event(
    course: str,
    items: Iterable[Drift],
    seen: dict[str, Observed],
    by: str,
    at: datetime | None = None,
) -> EnrolmentsObserved:
    users = sorted({d.user for d in items})
    found = tuple(
        ObservedEnrolment(u, seen[u].role, seen[u].suspended, seen[u].moodle_user_id)
        for u in users
        if u in seen
    )
    absent = tuple(u for u in users if u not in seen)
    return EnrolmentsObserved(
        course=course, found=found, absent=absent, by=by, at=at or datetime.now(UTC)
    )


def observed(tables: CourseTables, event: EnrolmentsObserved, applier: Marks) -> None:
    """Fold a repair into the ledger (owned entries only) and plan the course again."""
    course = event.course
    seen = {f.user: Observed(f.user, f.role, f.suspended, f.moodle_user_id) for f in event.found}
    users = [*seen, *event.absent]
    before = tables.ledger(course)
    after = resync(before, seen, users, event.at)
    for user in users:
        old, new = before.entries.get(user), after.entries.get(user)
        if new is None and old is not None:
            del tables.ledger_table[ledger_key(course, user)]
        elif new is not None and new is not old:
            tables.put_ledger(new)
    log.info("drift repair in %s by %s: %d user(s) resynced", course, event.by, len(users))
    applier.mark(course)


Publish = Callable[[EnrolmentsObserved], Awaitable[None]]

# The gauge's kinds (streams/metrics.py DRIFT_KINDS, named by the dashboard and alert rules):
# a wrong status or a wrong role is an enrolment whose tuple differs, "mismatched".
GAUGE_KIND = {
    DriftKind.MISSING: "missing",
    DriftKind.EXTRA: "extra",
    DriftKind.WRONG_STATUS: "mismatched",
    DriftKind.WRONG_ROLE: "mismatched",
}


class DriftWatch:
    def __init__(
        self,
        tables: CourseTables,
        gateway: MoodleGateway,
        policy: PlanPolicy,
        busy: Callable[[str], bool],
        publish: Publish,
        *,
        interval_s: float,
        confirm_s: float,
        repair: bool,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tables = tables
        self.gateway = gateway
        self.policy = policy
        self.busy = busy
        self.publish = publish
        self.interval_s = interval_s
        self.confirm_s = confirm_s
        self.repair = repair
        self.wall = wall
        self.last: dict[str, CourseDrift] = {}
        for kind in metrics.DRIFT_KINDS:
            metrics.DRIFT.labels(kind).set(0)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # a safety net must not take the worker down
                log.exception("drift check failed; next one in %.0fs", self.interval_s)

    async def check_all(self) -> dict[str, CourseDrift]:
        """One pass over the courses this worker owns; returns the confirmed drift."""
        first: dict[str, tuple[CourseDrift, dict[str, Observed]]] = {}
        for course in list(self.tables.courses()):
            checked = await self.check(course)
            if checked is not None and checked[0].items:
                first[course] = checked
        if first and self.confirm_s > 0:
            await asyncio.sleep(self.confirm_s)
        confirmed: dict[str, CourseDrift] = {}
        for course, (before, _) in first.items():
            again = await self.check(course) if self.confirm_s > 0 else first[course]
            if again is None:
                continue
            kept = _both(before, again[0])
            if kept.items:
                confirmed[course] = kept
                if self.repair:
                    event = repair_event(course, kept.items, again[1], "drift-check", self.wall())
                    await self.publish(event)
        self._report(confirmed)
        self.last = confirmed
        return confirmed

    async def check(self, course: str) -> tuple[CourseDrift, dict[str, Observed]] | None:
        meta = self.tables.meta(course)
        if meta is None or meta.moodle_course_id is None or meta.paused or self.busy(course):
            return None
        try:
            roster = await self.gateway.roster(course, meta.moodle_course_id)
        except MoodleError as exc:
            log.warning("drift check of %s skipped: %s", course, exc)
            return None
        seen = observed_of(roster)
        result = drift(self.tables.desired(course), self.tables.ledger(course), seen, self.policy)
        return result, seen

    def _report(self, confirmed: dict[str, CourseDrift]) -> None:
        counts: Counter[str] = Counter(
            GAUGE_KIND[d.kind] for c in confirmed.values() for d in c.items
        )
        for kind in metrics.DRIFT_KINDS:
            metrics.DRIFT.labels(kind).set(counts[kind])
        for course, found in sorted(confirmed.items()):
            log.warning(
                "drift in %s: %s%s",
                course,
                ", ".join(f"{k.value} {found.count(k)}" for k in DriftKind if found.count(k)),
                " (repair published)" if self.repair else " (report only)",
            )


def _both(before: CourseDrift, after: CourseDrift) -> CourseDrift:
    """The differences seen in both reads (same user, same kind)."""
    seen = {(d.user, d.kind) for d in before.items}
    items = tuple(d for d in after.items if (d.user, d.kind) in seen)
    return CourseDrift(after.course, items, after.checked, after.unmanaged)
