"""The whole pipeline in one process, without Kafka: dict tables, results folded at once.

``StudentView`` → ``CourseView`` (its ``FactsChanged`` are handed straight over) → ``Applier``
(its ``publish`` folds straight back into ``CourseView``), against the in-process Moodle
emulator through the real client. Time is a fake clock the test moves (grace windows, retries,
parking) — cosmicpython's FakeUnitOfWork idea for a stream processor.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.audit import AuditRecord
from schemas.course_events import CourseEvent, WritesSent
from schemas.deadletter import DeadLetterRecord
from streams.applier import Applier, ApplierConfig, MoodleGateway
from streams.applier.gateway import REQUIRED_CAPABILITIES
from streams.domain.mapping import build_mapping
from streams.domain.policy import FoldPolicy, PlanPolicy
from streams.moodle import MoodleClient, MoodleSettings
from streams.pipeline.handlers import CourseView, MappingHolder, StudentView
from streams.pipeline.state import CourseTables
from tests.unit.domain.apogee import Db

TOKEN = "0123456789abcdef0123456789abcdef"
ROLE_IDS = {"student": 5, "teacher": 4, "editingteacher": 3}
CAPABILITIES = list(REQUIRED_CAPABILITIES)


def seed(users: Sequence[str], courses: Sequence[str], **site: Any) -> dict[str, Any]:
    """Users with these idnumbers (ids 100…), courses with these idnumbers (ids 10…)."""
    return {
        "site": {"version": "4.4", **site},
        "users": [{"id": 3, "username": "ws"}]
        + [{"id": 100 + i, "username": f"u{u}", "idnumber": u} for i, u in enumerate(users)],
        "courses": [
            {"id": 10 + i, "shortname": c, "idnumber": c, "instances": [{"enrol": "manual"}]}
            for i, c in enumerate(courses)
        ],
        "tokens": [
            {
                "token": TOKEN,
                "userid": 3,
                "capabilities": CAPABILITIES,
                "assignable_roles": [3, 4, 5],
            }
        ],
    }


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def mono(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Loop:
    def __init__(
        self, url: str, policy: PlanPolicy | None = None, shadow: bool = False, **moodle: Any
    ) -> None:
        self.clock = Clock()
        self.students: dict[bytes, bytes] = {}
        self.tables = CourseTables({}, {}, {}, {})
        self.dead_letters: list[DeadLetterRecord] = []
        self.audits: list[AuditRecord] = []
        self.shadowed: list[AuditRecord] = []
        self.events: list[CourseEvent] = []
        settings = MoodleSettings.model_validate(
            {
                "url": url,
                "token": TOKEN,
                "rate_per_s": 1000,
                "rate_burst": 100,
                "backoff_base_s": 0.01,
                "backoff_cap_s": 0.02,
                **moodle,
            }
        )
        self.client = MoodleClient(settings)
        self.config = ApplierConfig(policy=policy or PlanPolicy(), linger_s=0, shadow=shadow)
        self.applier, self.courses = self._worker()
        self.view = StudentView(
            self.students,
            FoldPolicy(),
            MappingHolder(build_mapping(())),
            lambda event: self.courses.on_event(event),
            self.dead_letters.append,
        )
        self.fold_later = False
        self.unfolded: list[CourseEvent] = []
        self._offset = itertools.count()
        self._fed = 0

    def _worker(self) -> tuple[Applier, CourseView]:
        applier = Applier(
            self.tables,
            self,
            MoodleGateway(self.client, "idnumber", ROLE_IDS),
            self.config,
            clock=self.clock.mono,
            wall=self.clock.wall,
        )
        applier.resume()
        return applier, CourseView(self.tables, applier, clock=self.clock.wall)

    def restart(self) -> None:
        """The worker killed and started again (or another taking the courses over): the
        tables are kept (RocksDB, changelogs), whatever was only in the process is gone —
        results not yet folded included; then the start-up sweep."""
        self.unfolded.clear()
        self.fold_later = False
        self.applier, self.courses = self._worker()
        self.applier.sweep()

    # -- Outbox --------------------------------------------------------------------------------
    async def publish(self, event: CourseEvent) -> None:
        self.events.append(event)
        if self.fold_later:  # the results agent is behind (a backlog): fold on demand
            self.unfolded.append(event)
        else:
            self.courses.on_event(event)

    async def sent(self, events: Sequence[WritesSent]) -> None:
        """Write-ahead: acknowledged at once (folded now even when results wait: a crash
        after this point loses the results, not the record that the writes were sent)."""
        for event in events:
            self.events.append(event)
            self.courses.on_event(event)

    def fold(self) -> None:
        for event in self.unfolded:
            self.courses.on_event(event)
        self.unfolded.clear()

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        self.audits.extend(records)

    async def shadow(self, records: Sequence[AuditRecord]) -> None:
        self.shadowed.extend(records)

    # -- driving ---------------------------------------------------------------------------------
    def feed(self, db: Db) -> None:
        """Hand every record the simulated connector emitted since the last feed."""
        for record in db.records[self._fed :]:
            key = f'{{"cod_ind": {record.cod_ind}}}'.encode()
            self.view.on_record(record.topic, 0, next(self._offset), key, record.value)
        self._fed = len(db.records)

    def raw(self, topic: str, value: bytes | None, key: bytes | None = b"k") -> None:
        self.view.on_record(topic, 0, next(self._offset), key, value)

    async def settle(self, rounds: int = 20) -> int:
        """Run cycles until nothing is ready at the current (fake) time; returns cycles run."""
        for n in range(rounds):
            courses = self.applier.schedule.take_scoped(self.clock.mono(), 10_000)
            if not courses:
                return n
            await self.applier.cycle(courses)
            for course, _ in courses:
                self.applier.schedule.release(course)
        raise AssertionError(f"not settled after {rounds} cycles")

    async def later(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return await self.settle()

    async def close(self) -> None:
        await self.client.aclose()

    # -- reading Moodle through its web services ---------------------------------------------
    async def roster(self, course: str) -> dict[str, str]:
        """user idnumber → "active" | "suspended", read with core_enrol_get_enrolled_users."""
        found = await self.client.core_course_get_courses_by_field("idnumber", course)
        course_id = found[0].id
        active = await self.client.core_enrol_get_enrolled_users(course_id, onlyactive=True)
        suspended = await self.client.core_enrol_get_enrolled_users(course_id, onlysuspended=True)
        out = {u.idnumber or f"#{u.id}": "suspended" for u in suspended}
        out.update({u.idnumber or f"#{u.id}": "active" for u in active})
        return out
