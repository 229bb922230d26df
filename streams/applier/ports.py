"""What the applier needs from the rest of the worker, as protocols (no faust, no Kafka here).

The pipeline implements them over its tables and topics; tests implement them with dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from schemas.audit import AuditRecord
from schemas.course_events import CourseEvent, CourseMeta, WriteInDoubt, WritesSent
from streams.domain.desired import CourseDesired
from streams.domain.ledger import CourseLedger

__all__ = ["CourseState", "Everywhere", "Outbox"]


@dataclass(frozen=True, slots=True)
class Everywhere:
    """Operator decisions for every course at once (``reconciler approve --all``)."""

    approved_at: datetime | None = None
    rejected_at: datetime | None = None


class CourseState(Protocol):
    """Read side of the course-keyed tables, for the courses this worker owns."""

    def desired(self, course: str) -> CourseDesired: ...

    def ledger(self, course: str) -> CourseLedger: ...

    def desired_for(self, course: str, users: Iterable[str]) -> CourseDesired: ...

    def ledger_for(self, course: str, users: Iterable[str]) -> CourseLedger: ...

    def meta(self, course: str) -> CourseMeta | None: ...

    def everywhere(self) -> Everywhere: ...

    def courses(self) -> Iterable[str]: ...

    def doubts(self, course: str) -> Mapping[str, WriteInDoubt]:
        """user → a write sent to Moodle that no folded result has settled yet."""
        ...


class Outbox(Protocol):
    """Where results go: the course topic (to the ledger) and the audit topic."""

    async def publish(self, event: CourseEvent) -> None: ...

    async def sent(self, events: Sequence[WritesSent]) -> None:
        """Write-ahead: returns once Kafka has acknowledged them (before the Moodle call)."""
        ...

    async def audit(self, records: Sequence[AuditRecord]) -> None: ...

    async def shadow(self, records: Sequence[AuditRecord]) -> None:
        """Shadow mode: the commands that would have been sent (outcome ``dry_run``)."""
        ...
