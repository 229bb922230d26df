"""Debezium captures every APOGÉE table of the real PostgreSQL into its Kafka topic.

A row inserted, updated and deleted in each captured table arrives with the expected
envelope: op c/u/d, before/after images (REPLICA IDENTITY FULL), source.lsn rising,
source.txId, source.ts_ms, then a tombstone; the three student tables are keyed by cod_ind.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.support.backends import Services
from tests.support.kafka import Record, end_offsets, read_until

pytestmark = pytest.mark.integration

TOPIC_PREFIX = "apogee.apogee."


@dataclass(frozen=True)
class Case:
    table: str
    row: dict[str, Any]
    key: dict[str, Any]
    change: dict[str, Any]


def _cases() -> list[Case]:
    ind = random.randint(90_000_000, 99_999_999)
    etp = "T" + uuid.uuid4().hex[:5].upper()
    elp = "T" + uuid.uuid4().hex[:7].upper()
    iae = {
        "cod_anu": "2026",
        "cod_ind": ind,
        "cod_etp": etp,
        "cod_vrs_vet": 1,
        "num_occ_iae": 1,
        "cod_dip": "DLIC",
        "cod_vrs_vdi": 1,
        "eta_iae": "E",
        "eta_pmt_iae": "P",
        "tem_iae_prm": "O",
        "dat_cre_iae": dt.date(2026, 9, 1),
        "dat_annul_iae": None,
    }
    ice = {
        "cod_anu": "2026",
        "cod_ind": ind,
        "cod_etp": etp,
        "cod_vrs_vet": 1,
        "cod_elp": elp,
        "cod_lse": "L1",
        "tem_prc_ice": "N",
        "dat_mod_ice": dt.date(2026, 9, 2),
    }
    return [
        Case(
            "individu",
            {
                "cod_ind": ind,
                "cod_etu": None,
                "lib_nom_pat_ind": "DURAND",
                "lib_nom_usu_ind": None,
                "lib_pr1_ind": "Zoé",
                "cod_nne_ind": "0123456789A"[:10],
            },
            {"cod_ind": ind},
            {"cod_etu": ind - 80_000_000},
        ),
        Case(
            "ins_adm_etp",
            iae,
            {"cod_ind": ind},
            {"eta_iae": "A", "dat_annul_iae": dt.date(2026, 10, 1)},
        ),
        Case("ind_contrat_elp", ice, {"cod_ind": ind}, {"tem_prc_ice": "O"}),
        Case(
            "element_pedagogi",
            {
                "cod_elp": elp,
                "lib_elp": "Algèbre 1",
                "lic_elp": "ALG1",
                "cod_nel": "UE",
                "cod_cmp": "SCI",
                "eta_elp": "O",
                "tem_sus_elp": "N",
            },
            {"cod_elp": elp},
            {"lib_elp": "Algèbre linéaire 1"},
        ),
        Case(
            "version_etape",
            {"cod_etp": etp, "cod_vrs_vet": 1, "lib_web_vet": "Licence 1 Maths"},
            {"cod_etp": etp, "cod_vrs_vet": 1},
            {"lib_web_vet": "L1 Mathématiques"},
        ),
    ]


def _jsonish(value: Any) -> Any:
    """What Debezium's JSON converter makes of a PostgreSQL value (DATE = days since epoch)."""
    if isinstance(value, dt.date):
        return (value - dt.date(1970, 1, 1)).days
    return value


def _where(case: Case) -> tuple[str, list[Any]]:
    pk = {k: case.row[k] for k in case.row if k in _pk_columns(case.table)}
    return " AND ".join(f"{k} = %s" for k in pk), list(pk.values())


def _pk_columns(table: str) -> set[str]:
    return {
        "individu": {"cod_ind"},
        "ins_adm_etp": {"cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "num_occ_iae"},
        "ind_contrat_elp": {"cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "cod_elp"},
        "element_pedagogi": {"cod_elp"},
        "version_etape": {"cod_etp", "cod_vrs_vet"},
    }[table]


def _apply_changes(dsn: str, case: Case) -> None:
    """Insert, update, delete: three transactions, so three txIds and rising LSNs."""
    cols = list(case.row)
    where, args = _where(case)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO apogee.{case.table} ({', '.join(cols)}) "
            f"VALUES ({', '.join(['%s'] * len(cols))})",
            list(case.row.values()),
        )
        sets = ", ".join(f"{k} = %s" for k in case.change)
        conn.execute(
            f"UPDATE apogee.{case.table} SET {sets} WHERE {where}", [*case.change.values(), *args]
        )
        conn.execute(f"DELETE FROM apogee.{case.table} WHERE {where}", args)


def _mine(case: Case, records: list[Record]) -> list[Record]:
    def matches(r: Record) -> bool:
        if r.key != case.key:
            return False
        if r.value is None:
            return True
        image = r.value.get("after") or r.value.get("before") or {}
        return all(
            image.get(k) == _jsonish(v) for k, v in case.row.items() if k in _pk_columns(case.table)
        )

    return [r for r in records if matches(r)]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.table)
def test_insert_update_delete_arrive_with_debezium_envelope(services: Services, case: Case) -> None:
    topic = TOPIC_PREFIX + case.table
    start = end_offsets(services.bootstrap_servers, topic)
    t0_ms = int(time.time() * 1000)
    _apply_changes(services.postgres_dsn, case)

    def complete(records: list[Record]) -> bool:
        mine = _mine(case, records)
        return len(mine) >= 4 and mine[-1].value is None

    events = _mine(
        case, read_until(services.bootstrap_servers, topic, complete, start, timeout_s=90)
    )
    create, update, delete, tombstone = events[-4:]
    expected_after = {k: _jsonish(v) for k, v in case.row.items()}
    updated = {**expected_after, **{k: _jsonish(v) for k, v in case.change.items()}}

    assert [e.value["op"] for e in (create, update, delete)] == ["c", "u", "d"]
    assert create.value["before"] is None and create.value["after"] == expected_after
    assert update.value["before"] == expected_after and update.value["after"] == updated
    assert delete.value["before"] == updated and delete.value["after"] is None
    assert tombstone.value is None and tombstone.key == case.key
    # Same key -> same partition, in source order.
    assert len({e.partition for e in events[-4:]}) == 1

    sources = [e.value["source"] for e in (create, update, delete)]
    for s in sources:
        assert s["connector"] == "postgresql" and s["db"] == "apogee"
        assert s["schema"] == "apogee" and s["table"] == case.table
        assert s["snapshot"] == "false"
        assert isinstance(s["txId"], int) and isinstance(s["lsn"], int)
        assert t0_ms - 60_000 <= s["ts_ms"] <= int(time.time() * 1000) + 60_000
    assert sources[0]["lsn"] < sources[1]["lsn"] < sources[2]["lsn"]
    assert len({s["txId"] for s in sources}) == 3
