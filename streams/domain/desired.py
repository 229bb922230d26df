"""Desired state per course: (user, role) → the facts supporting it.

An entry is present while at least one fact supports it. When its last fact is
retracted it stays, absent, with the time (``since``) and the withdrawn facts: the
plan counts the grace window from there, and the audit trail names the change that
removed it. Facts are routed to courses by the mapping before they get here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from schemas.enrolment import DesiredEnrolment
from schemas.facts import MembershipFact
from streams.domain.fold import Effect, FactAsserted
from streams.domain.mapping import CourseMapping, targets

__all__ = [
    "CourseChange",
    "CourseDesired",
    "apply_change",
    "apply_changes",
    "empty_desired",
    "forget_withdrawn",
    "present",
    "route",
]

Member = tuple[str, str]
"""(user, role)."""


@dataclass(frozen=True, slots=True)
class CourseChange:
    """A fact effect routed to one course and role (what the course-keyed agent receives)."""

    course: str
    role: str
    fact: MembershipFact
    asserted: bool


@dataclass(frozen=True, slots=True)
class CourseDesired:
    course: str
    entries: Mapping[Member, DesiredEnrolment]


def empty_desired(course: str) -> CourseDesired:
    return CourseDesired(course, MappingProxyType({}))


def route(effects: Iterable[Effect], mapping: CourseMapping) -> tuple[CourseChange, ...]:
    """Fan each fact effect out to the courses its fact maps to."""
    return tuple(
        CourseChange(course, role, effect.fact, isinstance(effect, FactAsserted))
        for effect in effects
        for course, role in targets(effect.fact, mapping)
    )


def apply_change(desired: CourseDesired, change: CourseChange, now: datetime) -> CourseDesired:
    """One routed effect; a duplicate assertion or retraction returns ``desired`` unchanged."""
    if change.course != desired.course:
        raise ValueError(f"change for {change.course!r} applied to {desired.course!r}")
    member = (change.fact.user, change.role)
    old = desired.entries.get(member)
    new = _asserted(old, change, now) if change.asserted else _retracted(old, change.fact, now)
    if new is old:
        return desired
    assert new is not None
    return CourseDesired(desired.course, {**desired.entries, member: new})


def apply_changes(
    desired: CourseDesired, changes: Iterable[CourseChange], now: datetime
) -> CourseDesired:
    """A batch for one course (a burst coalesced by the agent): one copy, not one per change."""
    entries = dict(desired.entries)
    for change in changes:
        if change.course != desired.course:
            raise ValueError(f"change for {change.course!r} applied to {desired.course!r}")
        member = (change.fact.user, change.role)
        old = entries.get(member)
        new = _asserted(old, change, now) if change.asserted else _retracted(old, change.fact, now)
        if new is not None:
            entries[member] = new
    return CourseDesired(desired.course, entries)


def _asserted(
    old: DesiredEnrolment | None, change: CourseChange, now: datetime
) -> DesiredEnrolment:
    if old is None:
        fact = change.fact
        return DesiredEnrolment(change.course, fact.user, change.role, (fact,), now)
    if change.fact in old.facts:
        return _redated(old, change.fact)
    since = old.since if old.present else now
    return replace(old, facts=(*old.facts, change.fact), since=since, withdrawn=())


def _redated(old: DesiredEnrolment, fact: MembershipFact) -> DesiredEnrolment:
    """A fact held already, asserted again: only its dates (not part of its identity) may
    have changed, and then the new ones replace the old."""
    held = old.facts[old.facts.index(fact)]
    if (held.timestart, held.timeend) == (fact.timestart, fact.timeend):
        return old
    return replace(old, facts=tuple(fact if f == fact else f for f in old.facts))


def _retracted(
    old: DesiredEnrolment | None, fact: MembershipFact, now: datetime
) -> DesiredEnrolment | None:
    if old is None or fact not in old.facts:
        return old
    remaining = tuple(f for f in old.facts if f != fact)
    if remaining:
        return replace(old, facts=remaining)
    return replace(old, facts=remaining, since=now, withdrawn=(fact,))


def present(desired: CourseDesired, precedence: tuple[str, ...]) -> dict[str, DesiredEnrolment]:
    """user → the present entry with the highest-precedence role (unknown roles rank last)."""
    rank = {role: index for index, role in enumerate(precedence)}
    chosen: dict[str, DesiredEnrolment] = {}
    for entry in desired.entries.values():
        held = chosen.get(entry.user)
        if entry.present and (held is None or _outranks(entry, held, rank)):
            chosen[entry.user] = entry
    return chosen


def _outranks(entry: DesiredEnrolment, held: DesiredEnrolment, rank: Mapping[str, int]) -> bool:
    last = len(rank)
    return (rank.get(entry.role, last), entry.role) < (rank.get(held.role, last), held.role)


def forget_withdrawn(desired: CourseDesired, before: datetime) -> CourseDesired:
    """Drop absent entries withdrawn before ``before`` (the plan then falls back on the ledger)."""
    kept = {m: e for m, e in desired.entries.items() if e.present or e.since >= before}
    return desired if len(kept) == len(desired.entries) else CourseDesired(desired.course, kept)
