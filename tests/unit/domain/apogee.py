"""A tiny APOGÉE simulator for tests: tables as dicts, every write emits a Debezium JSON record.

It plays the database and the connector: ``Db.write``/``Db.delete`` change the final table
contents (the oracle reads those) and append the change events the connector would send
(PostgreSQL style: lower-case columns, ``lsn``/``txId``; or Oracle style: upper-case
columns, decimals as strings, ``scn``/``commit_scn``/hex ``txId``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.debezium import Table

Row = dict[str, Any]
PK = {
    Table.INDIVIDU: ("cod_ind",),
    Table.INS_ADM_ETP: ("cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "num_occ_iae"),
    Table.IND_CONTRAT_ELP: ("cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "cod_elp"),
}
TOPIC = {table: f"apogee.apogee.{table.value.lower()}" for table in Table}


@dataclass(frozen=True)
class Record:
    """One Kafka record of a CDC topic (``value=None`` is a tombstone)."""

    topic: str
    value: bytes | None
    cod_ind: int


def key_of(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c] for c in PK[table])


@dataclass
class Db:
    oracle: bool = False
    tables: dict[Table, dict[tuple[Any, ...], Row]] = field(
        default_factory=lambda: {t: {} for t in Table}
    )
    records: list[Record] = field(default_factory=list)
    log: int = 1000
    tx: int = 1

    # -- the database -------------------------------------------------------------
    def write(self, table: Table, **row: Any) -> None:
        """INSERT or UPDATE (by primary key)."""
        key = key_of(table, row)
        before = self.tables[table].get(key)
        self.tables[table][key] = dict(row)
        self._emit(table, "u" if before else "c", before, dict(row))

    def delete(self, table: Table, **pk: Any) -> None:
        before = self.tables[table].pop(key_of(table, pk), None)
        if before is not None:
            self._emit(table, "d", before, None)
            self.records.append(Record(TOPIC[table], None, before["cod_ind"]))

    def rekey(self, table: Table, old: Row, **changes: Any) -> None:
        """UPDATE of primary-key columns: Debezium sends a delete then a create."""
        before = self.tables[table].pop(key_of(table, old))
        after = {**before, **changes}
        self.tables[table][key_of(table, after)] = after
        self._emit(table, "d", before, None)
        self._emit(table, "c", None, after)

    def commit(self) -> None:
        self.tx += 1

    def snapshot(self) -> list[Record]:
        """``op=r`` reads of every current row, all at one snapshot position."""
        self.log += 1
        reads = [
            self._record(table, "r", None, row, snapshot=True)
            for table in Table
            for row in self.tables[table].values()
        ]
        self.log += 1
        return reads

    def racing_snapshot(self, transaction: Callable[[], None]) -> None:
        """The connector's snapshot taken while ``transaction`` is in flight.

        The transaction's changes are logged before the snapshot position and commit after
        it; the snapshot reads the rows as they were before the transaction. Its reads come
        first in ``records``, then the transaction's events (streamed once committed).
        """
        committed = {table: dict(rows) for table, rows in self.tables.items()}
        mark = len(self.records)
        transaction()
        in_flight, self.records = self.records[mark:], self.records[:mark]
        current, self.tables = self.tables, committed
        self.records.extend(self.snapshot())
        self.tables = current
        self.log += 1
        self.records.extend(_committed_at(record, self.log) for record in in_flight)

    # -- the connector ------------------------------------------------------------
    def _emit(self, table: Table, op: str, before: Row | None, after: Row | None) -> None:
        self.log += 2
        self.records.append(self._record(table, op, before, after))

    def _record(
        self, table: Table, op: str, before: Row | None, after: Row | None, snapshot: bool = False
    ) -> Record:
        envelope = {
            "op": op,
            "before": self._image(before),
            "after": self._image(after),
            "source": self._source(table, snapshot),
            "ts_ms": 1_760_000_000_000 + self.log,
        }
        cod_ind = (after or before or {})["cod_ind"]
        return Record(TOPIC[table], json.dumps(envelope).encode(), cod_ind)

    def _image(self, row: Row | None) -> Row | None:
        if row is None or not self.oracle:
            return row
        return {k.upper(): _oracle_value(k, v) for k, v in row.items()}

    def _source(self, table: Table, snapshot: bool) -> dict[str, Any]:
        common = {
            "ts_ms": 1_760_000_000_000 + self.log,
            "table": table.value,
            "snapshot": "true" if snapshot else "false",
        }
        if self.oracle:  # each change commits one SCN after it was made
            scn, commit = (self.log, None) if snapshot else (self.log - 1, str(self.log))
            tx = None if snapshot else f"{self.tx:016x}"
            return {
                **common,
                "connector": "oracle",
                "scn": str(scn),
                "commit_scn": commit,
                "txId": tx,
            }
        return {**common, "connector": "postgresql", "lsn": self.log, "txId": self.tx}


def _committed_at(record: Record, commit: int) -> Record:
    """Oracle events carry their commit SCN: move it to ``commit`` (PostgreSQL has none)."""
    if record.value is None:
        return record
    envelope = json.loads(record.value)
    if envelope["source"]["connector"] != "oracle":
        return record
    envelope["source"]["commit_scn"] = str(commit)
    return replace(record, value=json.dumps(envelope).encode())


def _oracle_value(column: str, value: Any) -> Any:
    """Oracle via Debezium: NUMBER as decimal strings, DATE as ms since the epoch."""
    if not isinstance(value, int):
        return value
    return value * 86_400_000 if column.startswith("dat_") else str(value)
