"""Lineage: which source row, which change, which Kafka record a fact comes from."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import with_config

from schemas._types import CONTRACT

__all__ = ["SourceRef"]


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class SourceRef:
    """One source row as written by one change event.

    ``log`` is the PostgreSQL LSN of the change, or the Oracle SCN; ``commit_log`` the
    Oracle ``commit_scn`` (absent for PostgreSQL and for snapshot reads); ``seq`` the
    Oracle ``ssn`` tie-break. ``key`` joins the primary-key values with ``|`` in
    primary-key column order.
    """

    table: str
    key: str
    log: int
    tx: str | None = None
    commit_log: int | None = None
    seq: int = 0
    snapshot: bool = False
    committed_ms: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
