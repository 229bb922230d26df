"""CDC records the consumer skipped: each partition's next offset to fold, and the gaps.

faust-streaming 0.15.3 can skip records of a partition it has just taken over. Our reading
of its consumer (its drop is logged only at its "dev" level): the fetcher tracks a *read
offset* per partition, and a batch fetched before the seek to the committed offset
(recovery resumes the flow before that seek) advances it past records that never reach the
agent; when they come again they are below the read offset and dropped, and the offsets it
then commits pass them. Seen in the two-worker fault test under CPU load: the
survivor folded records 446 and 447 of a partition it took over, never 443–445, and
committed 449 (``tests/faults/test_two_workers.py``).

So the students agent checks the offsets itself. :class:`Positions` keeps, per CDC
partition, the next offset it expects: in memory while it owns the partition, and in the
``positions`` table (its changelog partition is the CDC partition's, restored with the
students table when another worker takes it over) at the first record, every ``every``
records and after a repair. A record past the expected offset means records were skipped:
the agent reads them back from Kafka and folds them first, in order. Folding is idempotent
(a record folded twice changes nothing), so a stored position that lags only costs records
read again: on a partition just taken over (the expected offset read from the table) up to
``every`` records already folded are read again with any the consumer skipped (logged at
info); a gap while the partition stays here is the consumer's alone (a warning). A gap at the end
of a partition has no later record to show it: a periodic check compares the group's
committed offset with the next offset to fold and, when the commit is past it (or when the
agent idles while Kafka holds records past it), seeks the consumer back to it
(``Pipeline._check_positions``).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Gap", "Positions"]


def _key(topic: str, partition: int) -> bytes:
    return f"{topic}\x1f{partition}".encode()


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets ``[start, end)`` not folded before the record at ``end``. ``takeover``: the
    expected offset came from the table (the partition was just assigned here): it lags by
    up to ``every`` records already folded, read again with any the consumer skipped."""

    start: int
    end: int
    takeover: bool


class Positions:
    """Next offset to fold per (topic, partition); the gaps before a record."""

    def __init__(self, table: MutableMapping[Any, Any], every: int = 100) -> None:
        self.table = table
        self.every = max(1, every)
        self._next: dict[tuple[str, int], int] = {}
        self._unsaved: dict[tuple[str, int], int] = {}
        self._stored: set[tuple[str, int]] = set()  # expected offsets read from the table

    def gap(self, topic: str, partition: int, offset: int) -> Gap | None:
        """The offsets skipped before ``offset``, if any were."""
        expected = self._expected(topic, partition)
        if expected is not None and offset > expected:
            return Gap(expected, offset, (topic, partition) in self._stored)
        return None

    def folded(self, topic: str, partition: int, offset: int, save: bool = False) -> None:
        """The record at ``offset`` was folded (a record delivered again changes nothing)."""
        where = (topic, partition)
        self._stored.discard(where)
        current = self._next.get(where)
        if current is not None and offset < current:
            return
        self._next[where] = offset + 1
        first = where not in self._unsaved  # stored at once: a takeover needs a start
        unsaved = self._unsaved.get(where, 0) + 1
        if save or first or unsaved >= self.every:
            self.table[_key(topic, partition)] = str(offset + 1).encode()
            unsaved = 0
        self._unsaved[where] = unsaved

    def behind(self, topic: str, partition: int, committed: int | None) -> Gap | None:
        """The offsets ``[next to fold, committed)`` when the group's committed offset is
        past the next offset to fold: acknowledged records this agent never folded (a
        consumer fault, found without waiting for a later record of the partition) — or, on
        a partition just assigned, the stored position's lag (``takeover``)."""
        expected = self._expected(topic, partition)
        if expected is not None and committed is not None and committed > expected:
            return Gap(expected, committed, (topic, partition) in self._stored)
        return None

    def keep_only(self, partitions: Iterable[int]) -> None:
        """A rebalance ended with these partitions here: what this process folded of them is
        exact (no one else read them in between); the others' positions are forgotten and
        read from the table if they come back (another worker may have moved them on)."""
        kept = set(partitions)
        for where in [w for w in self._next if w[1] not in kept]:
            del self._next[where]
            self._unsaved.pop(where, None)
            self._stored.discard(where)

    def _expected(self, topic: str, partition: int) -> int | None:
        where = (topic, partition)
        if where not in self._next:
            raw = self.table.get(_key(topic, partition))
            if raw is None:
                return None
            self._next[where] = int(raw)
            self._stored.add(where)
        return self._next[where]
