"""Did an event do what it should in Moodle? Read from the emulator, one user at a time.

An event's expectations are (course idnumber, user idnumber) pairs: active, suspended after
the grace window, and untouched (active, never modified since created: no suspend/reactivate
flap). The emulator's ``/_emulator/enrolments?userid=`` gives each manual enrolment's status
and its ``timecreated``/``timemodified`` (Moodle updates the latter on every status change).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.demo.display import fmt_s
from streams.workload.events import Event, Pair

__all__ = ["Tracked"]

Enrolments = Callable[[int], list[dict[str, Any]]]


@dataclass
class Tracked:
    """One event being watched until Moodle shows its expected result."""

    event: Event
    since: float  # commit (or Moodle action) time, monotonic
    grace_s: float
    user_ids: Mapping[str, int]  # user idnumber → Moodle id
    course_ids: Mapping[str, int]  # course idnumber → Moodle id
    parked: str | None = None  # the reason seen before the Moodle action
    added_at: float | None = None
    removed_at: float | None = None
    flapped: set[Pair] = field(default_factory=set)
    done: bool = False

    def new(self) -> frozenset[Pair]:
        return self.event.active - self.event.untouched

    def poll(self, read: Enrolments, now: float | None = None) -> bool:
        """Look at Moodle once; True when settled (as expected, or a flap was seen)."""
        now = time.monotonic() if now is None else now
        status = self._read(read)
        if self.added_at is None and all(status.get(p, (None,))[0] == 0 for p in self.new()):
            self.added_at = now
        suspended = self.event.suspended
        if self.removed_at is None and all(status.get(p, (None,))[0] == 1 for p in suspended):
            self.removed_at = now
        for pair in self.event.untouched:
            state, created, modified = status.get(pair, (None, 0, 0))
            if state != 0 or created != modified:
                self.flapped.add(pair)
        waited = now - self.since >= self.grace_s + 3  # a flap would have shown by now
        untouched_ok = not self.event.untouched or waited or self.flapped
        seen = self.added_at is not None and self.removed_at is not None
        self.done = bool(self.flapped) or (seen and bool(untouched_ok))
        return self.done

    def _read(self, read: Enrolments) -> dict[Pair, tuple[int, int, int]]:
        by_course = {v: k for k, v in self.course_ids.items()}
        status: dict[Pair, tuple[int, int, int]] = {}
        for user in self.event.users():
            uid = self.user_ids[user]
            for row in read(uid):
                course = by_course.get(int(row["courseid"]))
                if course is not None and row.get("enrol") == "manual":
                    status[(course, user)] = (
                        int(row["status"]),
                        int(row.get("timecreated", 0)),
                        int(row.get("timemodified", 0)),
                    )
        return status

    @property
    def ok(self) -> bool:
        return self.done and not self.flapped

    def describe(self) -> str:
        """What the reconciler did, in one line."""
        if self.flapped:
            return (
                f"FLAP: {len(self.flapped)} enrolment(s) modified that should not have been: "
                + ", ".join(f"{c}/{u}" for c, u in sorted(self.flapped)[:5])
            )
        parts = []
        new, gone = self.new(), self.event.suspended
        if self.parked:
            parts.append(f"parked ({self.parked}) until then")
        if new and self.added_at is not None:
            names = _names(new)
            parts.append(f"enrolled in {names} {fmt_s(self.added_at - self.since)} later")
        if gone and self.removed_at is not None:
            parts.append(
                f"suspended in {_names(gone)} {fmt_s(self.removed_at - self.since)} later "
                f"(grace window {fmt_s(self.grace_s)})"
            )
        if self.event.untouched:
            parts.append(
                f"{len(self.event.untouched)} unchanged enrolment(s) untouched: "
                "no suspend/reactivate flap"
            )
        return "; ".join(parts)

    def seconds(self) -> dict[str, float | None]:
        def since(t: float | None) -> float | None:
            return None if t is None else round(t - self.since, 3)

        return {
            "added": since(self.added_at) if self.new() else None,
            "removed": since(self.removed_at) if self.event.suspended else None,
        }


def _names(pairs: frozenset[Pair]) -> str:
    courses = sorted({c for c, _ in pairs})
    if len(courses) <= 2:
        return " and ".join(courses)
    return f"{len(courses)} courses"
