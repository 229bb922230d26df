"""Replay: the desired state rebuilt from retained history, with the same pure functions.

Records are fed in Kafka order per partition (the CDC topics are keyed by ``COD_IND``, so a
student's rows come in order): each is decoded, folded into its student's state, and the
facts that appear or disappear are routed by the mapping and applied to the courses' desired
state — ``decode``, ``fold``, ``route``, ``apply_changes``, exactly what the worker runs, so
a replay under the mapping and policy in force rebuilds what the worker wanted, and a replay
under other ones shows what they would have wanted. Manual facts (CSV batches) are fed as the
course-events topic carries them; they need no mapping.

Changes are applied per course in batches (one copy of the course per batch, as the worker
does); a batch holds changes of the same second, so ``since`` (the grace window's start) is
exact to the second. The order between a CDC record and a manual fact of one membership only
moves that membership's ``since``.

>>> roster_digest([("2100001", "student")])[:16]
'5681aa754b5ce16c'
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.facts import FactKind
from streams.domain.changes import Tombstone
from streams.domain.desired import (
    CourseChange,
    CourseDesired,
    apply_changes,
    empty_desired,
    present,
    route,
)
from streams.domain.fold import Effect, fold
from streams.domain.ingest import KafkaRef, Rejected, decode
from streams.domain.mapping import CourseMapping
from streams.domain.policy import FoldPolicy
from streams.domain.student import StudentState, empty_student

__all__ = ["Replay", "roster", "roster_digest"]

Member = tuple[str, str]
BATCH = 500


@dataclass
class Replay:
    """Accumulates students and desired state; ``courses`` keeps only those (None: all)."""

    mapping: CourseMapping
    fold_policy: FoldPolicy = field(default_factory=FoldPolicy)
    courses: frozenset[str] | None = None
    students: dict[int, StudentState] = field(default_factory=dict)
    desired: dict[str, CourseDesired] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    _pending: dict[str, tuple[datetime, list[CourseChange]]] = field(default_factory=dict)

    def cdc(self, topic: str, value: bytes | None, where: KafkaRef, at: datetime) -> None:
        """One record of a CDC topic, written to Kafka at ``at``."""
        decoded = decode(topic, value, where)
        if isinstance(decoded, Rejected):
            self.counts["rejected"] += 1
            return
        if isinstance(decoded, Tombstone):
            self.counts["tombstone"] += 1
            return
        for change in decoded:
            state = self.students.get(change.cod_ind) or empty_student(change.cod_ind)
            new, effects = fold(state, change, self.fold_policy)
            if new is state:
                self.counts["duplicate"] += 1
                continue
            self.counts["folded"] += 1
            self.students[change.cod_ind] = new
            self._route(effects, at)

    def manual(self, course: str, changes: Iterable[CourseChange], at: datetime) -> None:
        """Manual facts as the course-events topic carried them (others are ignored: the
        replay derives APOGÉE facts itself, under its own mapping)."""
        for change in changes:
            if change.fact.kind is FactKind.MANUAL and change.course == course:
                self.counts["manual"] += 1
                self._add(change, at)

    def _route(self, effects: Iterable[Effect], at: datetime) -> None:
        for change in route(effects, self.mapping):
            self._add(change, at)

    def _add(self, change: CourseChange, at: datetime) -> None:
        if self.courses is not None and change.course not in self.courses:
            return
        moment = at.replace(microsecond=0)
        held = self._pending.get(change.course)
        if held is not None and (held[0] != moment or len(held[1]) >= BATCH):
            self._flush(change.course)
            held = None
        if held is None:
            self._pending[change.course] = (moment, [change])
        else:
            held[1].append(change)

    def _flush(self, course: str) -> None:
        moment, changes = self._pending.pop(course)
        current = self.desired.get(course) or empty_desired(course)
        self.desired[course] = apply_changes(current, changes, moment)

    def finish(self) -> dict[str, CourseDesired]:
        """Apply what is buffered; the desired state of every course seen."""
        for course in list(self._pending):
            self._flush(course)
        return self.desired


def roster(desired: CourseDesired, precedence: tuple[str, ...]) -> tuple[Member, ...]:
    """(user, role) of each present member, sorted: what Moodle should hold."""
    chosen = present(desired, precedence)
    return tuple(sorted((user, entry.role) for user, entry in chosen.items()))


def roster_digest(members: Iterable[Member]) -> str:
    """SHA-256 of the roster's canonical form (``user<TAB>role<LF>``, sorted): equal rosters,
    equal digests, whatever the order they were built in."""
    text = "".join(f"{user}\t{role}\n" for user, role in sorted(members))
    return hashlib.sha256(text.encode()).hexdigest()
