"""Write workload transactions to the APOGÉE stand-in (PostgreSQL), as APOGÉE commits them.

Each :data:`~streams.workload.rows.Transaction` is one database transaction, so Debezium sees
the same commit boundaries (a contract edit's delete and re-insert arrive with one txId).
Inserts go through ``COPY`` (the initial load of a year is tens of thousands of rows),
updates and deletes through ``executemany``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from typing import Any

import psycopg
from psycopg import sql

from streams.workload.rows import COLUMNS, PK, STUDENT_TABLES, Delete, Insert, Op, Row, Update

__all__ = ["remove_range", "upsert_reference", "write"]

Connection = psycopg.Connection[Any]


def _table(name: str) -> sql.Composed:
    return sql.SQL("apogee.{}").format(sql.Identifier(name))


def _kind(op: Op) -> tuple[str, str, tuple[str, ...]]:
    changed = tuple(sorted(op.changes)) if isinstance(op, Update) else ()
    return type(op).__name__, op.table, changed


def _runs(ops: Sequence[Op]) -> Iterator[list[Op]]:
    """Consecutive operations of one kind on one table (one COPY or one executemany)."""
    for _, run in groupby(ops, key=_kind):
        yield list(run)


def write(conn: Connection, transaction: Sequence[Op]) -> None:
    """Commit ``transaction`` as one database transaction."""
    with conn.transaction(), conn.cursor() as cur:
        for run in _runs(transaction):
            first = run[0]
            if isinstance(first, Insert):
                _copy(cur, first.table, [op.row for op in run if isinstance(op, Insert)])
            elif isinstance(first, Update):
                _update(cur, first.table, [op for op in run if isinstance(op, Update)])
            else:
                _delete(cur, first.table, [op.key for op in run if isinstance(op, Delete)])


def _copy(cur: psycopg.Cursor[Any], table: str, rows: Iterable[Row]) -> None:
    columns = COLUMNS[table]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        _table(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(tuple(row[c] for c in columns))


def _where(table: str) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(f"k_{c}")) for c in PK[table]
    )


def _update(cur: psycopg.Cursor[Any], table: str, ops: Sequence[Update]) -> None:
    columns = sorted(ops[0].changes)
    statement = sql.SQL("UPDATE {} SET {} WHERE {}").format(
        _table(table),
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(f"v_{c}")) for c in columns
        ),
        _where(table),
    )
    params = [
        {**{f"v_{c}": op.changes[c] for c in columns}, **{f"k_{c}": op.key[c] for c in PK[table]}}
        for op in ops
    ]
    cur.executemany(statement, params)


def _delete(cur: psycopg.Cursor[Any], table: str, keys: Sequence[Row]) -> None:
    statement = sql.SQL("DELETE FROM {} WHERE {}").format(_table(table), _where(table))
    cur.executemany(statement, [{f"k_{c}": key[c] for c in PK[table]} for key in keys])


def remove_range(conn: Connection, cod_ind_range: tuple[int, int]) -> int:
    """Delete every student row in the range (an earlier run's); returns rows deleted."""
    low, high = cod_ind_range
    removed = 0
    with conn.transaction(), conn.cursor() as cur:
        for table in reversed(STUDENT_TABLES):
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE cod_ind BETWEEN %s AND %s").format(_table(table)),
                (low, high),
            )
            removed += cur.rowcount
    return removed


def upsert_reference(conn: Connection, tables: dict[str, list[Row]]) -> None:
    """Reference rows (elements, stage versions), shared by every run: insert or update."""
    with conn.transaction(), conn.cursor() as cur:
        for table, rows in tables.items():
            if not rows:
                continue
            columns = COLUMNS[table]
            others = [c for c in columns if c not in PK[table]]
            mine = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in others)
            theirs = sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in others
            )
            statement = sql.SQL(
                "INSERT INTO {} AS t ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {} "
                "WHERE ({}) IS DISTINCT FROM ({})"  # unchanged rows: no change event
            ).format(
                _table(table),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
                sql.SQL(", ").join(map(sql.Identifier, PK[table])),
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others
                ),
                mine,
                theirs,
            )
            cur.executemany(statement, rows)
