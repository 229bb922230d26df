"""The mass-removal guard: hold removals past a count or share threshold until approved.

The load is every removal we made in the window (unapproved) plus every removal now
pending, due or still in its grace window; counting the pending ones means a burst
that becomes due a few at a time is still seen as one burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from schemas.commands import MoodleCommand

__all__ = ["Limits", "PlannedRemoval", "admit", "trips"]


@dataclass(frozen=True, slots=True)
class PlannedRemoval:
    """A due removal and when it became due (end of its grace window)."""

    command: MoodleCommand
    due: datetime


@dataclass(frozen=True, slots=True)
class Limits:
    max_count: int
    max_share: float
    share_floor: int


def trips(load: int, base: int, limits: Limits) -> bool:
    """True when ``load`` removals out of a population of ``base`` is a mass removal."""
    if load > limits.max_count:
        return True
    return base >= limits.share_floor and load > limits.max_share * base


def admit(
    due: Sequence[PlannedRemoval],
    load: int,
    base: int,
    limits: Limits,
    approved_at: datetime | None,
) -> tuple[tuple[PlannedRemoval, ...], tuple[PlannedRemoval, ...]]:
    """Split due removals into (admitted, held); approved ones always pass, stamped."""
    approved = tuple(_stamp(r, approved_at) for r in due if _covered(r, approved_at))
    rest = tuple(r for r in due if not _covered(r, approved_at))
    if rest and trips(load - len(approved), base, limits):
        return approved, rest
    return approved + rest, ()


def _covered(removal: PlannedRemoval, approved_at: datetime | None) -> bool:
    return removal.command.approved_at is not None or (
        approved_at is not None and removal.due <= approved_at
    )


def _stamp(removal: PlannedRemoval, approved_at: datetime | None) -> PlannedRemoval:
    if removal.command.approved_at is not None:
        return removal
    return replace(removal, command=replace(removal.command, approved_at=approved_at))
