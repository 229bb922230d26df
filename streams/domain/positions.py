"""Source positions: total order of the changes to one source row (LSN or SCN, then txId).

PostgreSQL: ``(lsn, txId)``. Oracle: the commit SCN first when known, then the change
SCN, txId and ``ssn``; ordering by commit makes a transaction that was in flight
during the snapshot win over the snapshot read of the same row.
"""

from __future__ import annotations

from string import hexdigits

from schemas.lineage import SourceRef

__all__ = ["Position", "is_newer", "position"]

Position = tuple[int, int, int, int]
_HEX = frozenset(hexdigits)


def _tx_order(tx: str | None) -> int:
    """A txId as an int; two transactions never tie (the later change would look like a replay).

    Hex digits are read as hex: Oracle's txId is a fixed-width hex XID (digits-only ones
    included), and PostgreSQL's decimal txId keeps its numeric order when read so (a longer
    number is larger in both bases; equal lengths compare digit by digit). Anything else is
    ordered by its bytes, on odd values, so it can tie with neither kind.
    """
    if not tx:
        return 0
    if _HEX.issuperset(tx):
        return int(tx, 16) << 1
    return int.from_bytes(tx.encode(), "big") << 1 | 1


def position(ref: SourceRef) -> Position:
    """The sort key of a change to one row."""
    primary = ref.log if ref.commit_log is None else ref.commit_log
    return (primary, ref.log, _tx_order(ref.tx), ref.seq)


def is_newer(incoming: SourceRef, current: SourceRef | None) -> bool:
    """True when ``incoming`` supersedes ``current`` (equal positions are duplicates)."""
    return current is None or position(incoming) > position(current)
