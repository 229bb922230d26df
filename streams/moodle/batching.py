"""Batches within PHP's ``max_input_vars``, and bisection of a failed batch.

Moodle applies a batched write in one transaction and rolls everything back at the first bad
item, naming ids but never the row index. :func:`apply_bisecting` splits a failed batch in
halves until each bad item is alone, applies the rest, and returns one outcome per item.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from streams.moodle.errors import MoodleError, RetryLater, is_item_level

T = TypeVar("T")

__all__ = ["ItemOutcome", "Status", "apply_bisecting", "chunks", "max_rows"]

# wstoken, wsfunction and moodlewsrestformat also count as input variables.
FIXED_VARS = 3


def max_rows(
    max_input_vars: int, vars_per_row: int, safety: float = 0.9, cap: int | None = None
) -> int:
    """Largest row count with ``rows × vars_per_row + 3 <= safety × max_input_vars``."""
    budget = int(max_input_vars * safety) - FIXED_VARS
    rows = budget // vars_per_row
    if rows < 1:
        raise ValueError(
            f"max_input_vars={max_input_vars} leaves no room for a {vars_per_row}-var row"
        )
    return min(rows, cap) if cap else rows


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Status(enum.Enum):
    APPLIED = "applied"
    REJECTED = "rejected"  # permanent for this item: park it with the error
    DEFERRED = "deferred"  # transient failure outlived the retries: try again later


@dataclass(frozen=True)
class ItemOutcome(Generic[T]):
    item: T
    status: Status
    error: MoodleError | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.APPLIED


async def apply_bisecting(
    items: Sequence[T], call: Callable[[Sequence[T]], Awaitable[object]]
) -> list[ItemOutcome[T]]:
    """Apply ``items`` with ``call`` (which raises :class:`MoodleError`), isolating bad items.

    Item-level errors split the batch; a transient error that survived the caller's retries
    defers the whole (sub-)batch; call-level permanent errors (token, access) are raised.
    Outcomes keep the input order.
    """
    if not items:
        return []
    try:
        await call(items)
    except RetryLater as exc:
        return [ItemOutcome(i, Status.DEFERRED, exc) for i in items]
    except MoodleError as exc:
        if not is_item_level(exc):
            raise
        if len(items) == 1:
            return [ItemOutcome(items[0], Status.REJECTED, exc)]
        middle = len(items) // 2
        left = await apply_bisecting(items[:middle], call)
        return left + await apply_bisecting(items[middle:], call)
    return [ItemOutcome(i, Status.APPLIED) for i in items]
