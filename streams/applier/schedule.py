"""Which courses to reconcile next: a dirty set, timers, and courses waiting for their results.

Level-triggered (controller-runtime's work queue): a course is only a key here, marking it
twice while it waits is marking it once, and the applier reads the course's state when it
gets to it. A course taken by a cycle is *busy* until the cycle ends, so it is never planned
twice at once. A change that only adds members marks just their users: the cycle then plans
those users, not the whole course (see the applier).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Iterable

__all__ = ["Schedule"]


class Schedule:
    def __init__(self) -> None:
        # Insertion-ordered: oldest first. The value is the users whose entries changed (an
        # addition-only change: only they need planning), or None: plan the whole course.
        self._dirty: dict[str, set[str] | None] = {}
        self._timers: list[tuple[float, str]] = []
        self._in_flight: set[str] = set()
        self._wake = asyncio.Event()

    def mark(self, course: str, users: Iterable[str] | None = None) -> None:
        """Reconcile ``course`` as soon as possible: only ``users`` (when given), or all of it."""
        if users is None:
            self._dirty[course] = None
        elif course not in self._dirty:
            self._dirty[course] = set(users)
        elif (scope := self._dirty[course]) is not None:
            scope.update(users)
        if course not in self._in_flight:
            self._wake.set()

    def mark_all(self, courses: Iterable[str]) -> None:
        for course in courses:
            self.mark(course)

    def at(self, course: str, when: float) -> None:
        """Reconcile ``course`` at ``when`` (monotonic seconds)."""
        heapq.heappush(self._timers, (when, course))
        self._wake.set()

    def release(self, course: str) -> None:
        """The cycle is done with ``course`` and sent nothing to wait for."""
        self._in_flight.discard(course)
        if course in self._dirty:
            self._wake.set()

    def forget(self, courses: Iterable[str]) -> None:
        """Courses no longer ours (partitions revoked)."""
        gone = set(courses)
        for course in gone:
            self._dirty.pop(course, None)
        self._in_flight -= gone
        self._timers = [(t, c) for t, c in self._timers if c not in gone]
        heapq.heapify(self._timers)

    def clear(self) -> None:
        self._dirty.clear()
        self._in_flight.clear()
        self._timers.clear()

    def take(self, now: float, limit: int) -> list[str]:
        """:meth:`take_scoped`, courses only (each planned whole)."""
        return [course for course, _ in self.take_scoped(now, limit)]

    def take_scoped(self, now: float, limit: int) -> list[tuple[str, frozenset[str] | None]]:
        """Up to ``limit`` courses ready now (dirty or due, not busy), oldest first, each with
        the users to plan (None: the whole course); busy until :meth:`release`."""
        while self._timers and self._timers[0][0] <= now:
            _, course = heapq.heappop(self._timers)
            self._dirty[course] = None
        ready = [c for c in self._dirty if c not in self._in_flight][:limit]
        taken = []
        for course in ready:
            scope = self._dirty.pop(course)
            self._in_flight.add(course)
            taken.append((course, None if scope is None else frozenset(scope)))
        return taken

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    @property
    def pending(self) -> int:
        """Courses waiting: dirty (in flight or not)."""
        return len(self._dirty)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def is_in_flight(self, course: str) -> bool:
        return course in self._in_flight

    async def wait(self, now: float, longest: float) -> None:
        """Sleep until something may be ready, or until the next timer, or ``longest``."""
        if any(c not in self._in_flight for c in self._dirty):
            return
        due = self.next_timer()
        delay = longest if due is None else max(0.0, min(longest, due - now))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
