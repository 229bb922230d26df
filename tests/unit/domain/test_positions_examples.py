"""Source positions: which of two changes to one row is newer (read as documentation).

PostgreSQL orders by LSN, then txId. Oracle orders by commit SCN when known (a snapshot
read has none: its SCN stands in), then the change SCN, then txId, then ``ssn``.
"""

from __future__ import annotations

import pytest

from schemas.lineage import SourceRef
from streams.domain.positions import is_newer, position


def pg(lsn: int, tx: str | None = None) -> SourceRef:
    return SourceRef("IND_CONTRAT_ELP", "2026|1|L1INF|1|INF101", lsn, tx)


def ora(scn: int, commit: int | None, tx: str | None = None, ssn: int = 0) -> SourceRef:
    return SourceRef("IND_CONTRAT_ELP", "2026|1|L1INF|1|INF101", scn, tx, commit, ssn)


def newer_only_one_way(a: SourceRef, b: SourceRef) -> bool:
    """``a`` supersedes ``b`` and not the reverse (a strict, total order)."""
    return is_newer(a, b) and not is_newer(b, a)


def test_anything_is_newer_than_nothing_and_a_duplicate_is_not_newer() -> None:
    assert is_newer(pg(5), None)
    assert not is_newer(pg(5, "7"), pg(5, "7"))


def test_postgresql_orders_by_lsn_first() -> None:
    assert newer_only_one_way(pg(200, "1"), pg(100, "9"))


@pytest.mark.parametrize(
    ("later", "earlier"),
    [("10", "9"), ("100", "99"), ("1000000", "999999"), ("20", "1")],
)
def test_postgresql_breaks_an_lsn_tie_by_numeric_txid(later: str, earlier: str) -> None:
    assert newer_only_one_way(pg(100, later), pg(100, earlier))


def test_a_txid_beats_no_txid_at_the_same_lsn() -> None:
    assert newer_only_one_way(pg(100, "1"), pg(100, None))
    assert not is_newer(pg(100, ""), pg(100, None))  # both "no transaction id"


def test_oracle_orders_by_commit_scn_before_the_change_scn() -> None:
    # Changed early (SCN 10) but committed late (SCN 50): newer than a change made and
    # committed in between (SCN 20, commit 30).
    assert newer_only_one_way(ora(10, 50), ora(20, 30))


def test_oracle_breaks_a_commit_scn_tie_by_the_change_scn() -> None:
    assert newer_only_one_way(ora(21, 50), ora(20, 50))


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        ("0000000000000010", "000000000000000a"),  # hex 16 > 10: digits only, still hex
        ("000000000000000b", "000000000000000a"),
        ("0a001b00c4010000", "09001b00c4010000"),
        ("0000000000000100", "00000000000000ff"),
    ],
)
def test_oracle_breaks_an_scn_tie_by_hex_txid_and_never_collapses_two(
    later: str, earlier: str
) -> None:
    assert newer_only_one_way(ora(20, 50, later), ora(20, 50, earlier))


def test_a_txid_that_is_not_a_number_still_has_a_place_of_its_own() -> None:
    # Whatever a connector sends, two different transactions never look like a duplicate.
    a, b = ora(20, 50, "5.6.641"), ora(20, 50, "5.6.642")
    assert position(a) != position(b)
    assert newer_only_one_way(b, a)
    assert position(ora(20, 50, "zz")) != position(ora(20, 50, None))
    # ... nor with a hex one ("zz" is 0x7a7a as bytes: it ties with neither neighbour).
    for hex_tx in ("7a7a", "7a7b", "f4f5"):
        assert position(ora(20, 50, "zz")) != position(ora(20, 50, hex_tx))


def test_oracle_breaks_a_full_tie_by_ssn() -> None:
    assert newer_only_one_way(ora(20, 50, "0a", ssn=2), ora(20, 50, "0a", ssn=1))


def test_an_oracle_snapshot_read_stands_at_its_own_scn() -> None:
    snapshot_read = ora(100, None)  # snapshot reads carry no commit SCN
    assert newer_only_one_way(snapshot_read, ora(90, 95))
    assert newer_only_one_way(ora(90, 105), snapshot_read)


def test_the_position_tuple_is_commit_then_change_then_tx_then_ssn() -> None:
    first, second = position(ora(20, 50, "0a", 3)), position(ora(20, None, "0a", 3))
    assert (first[0], first[1], first[3]) == (50, 20, 3)
    assert (second[0], second[1]) == (20, 20)
    assert first[2] == second[2] != position(ora(20, 50, None, 3))[2]
