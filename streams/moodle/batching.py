"""Batches within PHP's ``max_input_vars``, and bisection of a failed batch.

Moodle applies a batched write in one transaction and rolls everything back at the first bad
item, naming ids but never the row index. :func:`apply_bisecting` splits a failed batch in
halves until each bad item is alone, applies the rest, and returns one outcome per item.

A course without a usable manual instance fails every row of that course the same way, and on
Moodle ≤4.4 with PHP 8 it does so as an HTTP 500 with an empty body (no errorcode at all). Given
the rows' course (``course``) and a way to confirm (``confirm``), such errors are handled by
course: the batch is split per course once, a course whose own sub-batch still fails is checked
(``confirm``) and all its rows rejected with :class:`NoManualInstance`, and rows of a course
already known to fail are rejected without another call. So the course is found within one
split, never retried forever, and the other courses are applied.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from streams.moodle.errors import (
    MoodleError,
    NoManualInstance,
    PhpFatalError,
    RetryLater,
    is_item_level,
)

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


Confirm = Callable[[int, MoodleError], Awaitable["NoManualInstance | None"]]


async def apply_bisecting(
    items: Sequence[T],
    call: Callable[[Sequence[T]], Awaitable[object]],
    *,
    course: Callable[[T], int] | None = None,
    confirm: Confirm | None = None,
) -> list[ItemOutcome[T]]:
    """Apply ``items`` with ``call`` (which raises :class:`MoodleError`), isolating bad items.

    Item-level errors split the batch; a transient error that survived the caller's retries
    defers the whole (sub-)batch; call-level permanent errors (token, access) are raised.
    With ``course`` (and ``confirm`` for :class:`PhpFatalError`), course-level failures are
    handled per course as the module docstring says. Outcomes keep the input order.
    """
    return await _Bisect(call, course, confirm).apply(items)


class _Bisect(Generic[T]):
    def __init__(
        self,
        call: Callable[[Sequence[T]], Awaitable[object]],
        course: Callable[[T], int] | None,
        confirm: Confirm | None,
    ) -> None:
        self.call = call
        self.course = course
        self.confirm = confirm
        self.bad_courses: dict[int, NoManualInstance] = {}
        self.usable_courses: set[int] = set()  # confirmed to have a manual instance

    async def apply(self, items: Sequence[T]) -> list[ItemOutcome[T]]:
        if not items:
            return []
        course = self.course
        if course is not None and any(course(i) in self.bad_courses for i in items):
            return await self._regroup(items)
        try:
            await self.call(items)
        except PhpFatalError as exc:
            return await self._fatal(items, exc)
        except RetryLater as exc:
            return [ItemOutcome(i, Status.DEFERRED, exc) for i in items]
        except MoodleError as exc:
            if not is_item_level(exc):
                raise
            if isinstance(exc, NoManualInstance) and course is not None:
                return await self._course_level(items, exc)
            if len(items) == 1:
                return [ItemOutcome(items[0], Status.REJECTED, exc)]
            return await self._halves(items)
        return [ItemOutcome(i, Status.APPLIED) for i in items]

    async def _halves(self, items: Sequence[T]) -> list[ItemOutcome[T]]:
        middle = len(items) // 2
        left = await self.apply(items[:middle])
        return left + await self.apply(items[middle:])

    async def _regroup(self, items: Sequence[T]) -> list[ItemOutcome[T]]:
        """One sub-batch per course (in first-seen order), outcomes put back in input order;
        rows of a course known to fail are rejected without a call."""
        assert self.course is not None
        groups: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            groups.setdefault(self.course(item), []).append(index)
        outcomes: list[ItemOutcome[T] | None] = [None] * len(items)
        for courseid, indexes in groups.items():
            rows = [items[i] for i in indexes]
            bad = self.bad_courses.get(courseid)
            if bad is not None:
                results = [ItemOutcome(r, Status.REJECTED, bad) for r in rows]
            else:
                results = await self.apply(rows)
            for index, outcome in zip(indexes, results, strict=True):
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _single_course(self, items: Sequence[T]) -> int | None:
        assert self.course is not None
        courses = {self.course(i) for i in items}
        return courses.pop() if len(courses) == 1 else None

    async def _course_level(
        self, items: Sequence[T], exc: NoManualInstance
    ) -> list[ItemOutcome[T]]:
        courseid = self._single_course(items)
        if courseid is None:
            return await self._regroup(items)
        error = exc if exc.courseid is not None else _with_course(exc, courseid)
        self.bad_courses[courseid] = error
        return [ItemOutcome(i, Status.REJECTED, error) for i in items]

    async def _fatal(self, items: Sequence[T], exc: PhpFatalError) -> list[ItemOutcome[T]]:
        if self.course is None or self.confirm is None:
            return [ItemOutcome(i, Status.DEFERRED, exc) for i in items]
        courseid = self._single_course(items)
        if courseid is None:
            return await self._regroup(items)
        confirmed = None
        if courseid not in self.usable_courses:
            confirmed = await self.confirm(courseid, exc)
            if confirmed is None:
                self.usable_courses.add(courseid)
        if confirmed is not None:
            self.bad_courses[courseid] = confirmed
            return [ItemOutcome(i, Status.REJECTED, confirmed) for i in items]
        if len(items) == 1:  # an unexplained fatal error: transient as far as we know
            return [ItemOutcome(items[0], Status.DEFERRED, exc)]
        return await self._halves(items)


def _with_course(exc: NoManualInstance, courseid: int) -> NoManualInstance:
    return NoManualInstance(
        exc.message,
        courseid=courseid,
        errorcode=exc.errorcode,
        exception=exc.exception,
        debuginfo=exc.debuginfo,
        wsfunction=exc.wsfunction,
    )
