"""Source positions: total order of the changes to one source row (LSN or SCN, then txId).

PostgreSQL: ``(lsn, txId)``. Oracle: the commit SCN first when known, then the change
SCN, txId and ``ssn``; ordering by commit makes a transaction that was in flight
during the snapshot win over the snapshot read of the same row.
"""

from __future__ import annotations

from schemas.lineage import SourceRef

__all__ = ["Position", "is_newer", "position"]

Position = tuple[int, int, int, int]


def _tx_order(tx: str | None) -> int:
    if not tx:
        return 0
    try:
        return int(tx) if tx.isdigit() else int(tx, 16)
    except ValueError:
        return 0


def position(ref: SourceRef) -> Position:
    """The sort key of a change to one row."""
    primary = ref.log if ref.commit_log is None else ref.commit_log
    return (primary, ref.log, _tx_order(ref.tx), ref.seq)


def is_newer(incoming: SourceRef, current: SourceRef | None) -> bool:
    """True when ``incoming`` supersedes ``current`` (equal positions are duplicates)."""
    return current is None or position(incoming) > position(current)
