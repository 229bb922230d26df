"""Each CDC partition's next offset: gaps found, positions stored every N records."""

from __future__ import annotations

from streams.pipeline.gaps import Gap, Positions

T = "apogee.apogee.individu"


def test_a_record_past_the_expected_offset_shows_the_skipped_ones() -> None:
    positions = Positions({}, every=100)
    assert positions.gap(T, 0, 40) is None, "nothing known yet: the first record is the start"
    positions.folded(T, 0, 40)
    assert positions.gap(T, 0, 41) is None
    positions.folded(T, 0, 41)
    assert positions.gap(T, 0, 45) == Gap(42, 45, takeover=False)
    assert positions.gap(T, 1, 45) is None, "partitions are apart"
    assert positions.gap("apogee.apogee.ins_adm_etp", 0, 45) is None, "topics are apart"


def test_a_record_delivered_again_moves_nothing_back() -> None:
    positions = Positions({}, every=1)
    for offset in (10, 11, 12):
        positions.folded(T, 0, offset)
    positions.folded(T, 0, 5)  # a replay from an older committed offset
    assert positions.gap(T, 0, 13) is None
    assert positions.gap(T, 0, 5) is None


def test_the_position_is_stored_every_n_records_and_read_back_after_a_move() -> None:
    table: dict[bytes, bytes] = {}
    positions = Positions(table, every=3)
    positions.folded(T, 2, 99)
    assert table == {f"{T}\x1f2".encode(): b"100"}, "the first record: a start for a takeover"
    positions.folded(T, 2, 100)
    positions.folded(T, 2, 101)
    assert table[f"{T}\x1f2".encode()] == b"100", "not yet: every 3 records"
    positions.folded(T, 2, 102)
    assert table == {f"{T}\x1f2".encode(): b"103"}
    positions.folded(T, 2, 103)
    positions.folded(T, 2, 104, save=True)  # after a repair: at once
    assert table[f"{T}\x1f2".encode()] == b"105"
    positions.folded(T, 2, 105)
    positions.keep_only([0, 1])  # partition 2 went to another worker (and may come back)
    assert positions.gap(T, 2, 106) == Gap(105, 106, takeover=True), "the stored one lags"
    positions.folded(T, 2, 105)
    positions.folded(T, 2, 106)
    assert positions.gap(T, 2, 108) == Gap(107, 108, takeover=False), "known here again"
    assert Positions(table).gap(T, 2, 105) is None


def test_partitions_that_stay_keep_their_exact_position_across_a_rebalance() -> None:
    table: dict[bytes, bytes] = {}
    positions = Positions(table, every=100)
    for offset in range(10, 20):
        positions.folded(T, 0, offset)
    positions.keep_only([0, 3])  # a rebalance left partition 0 here: nothing to read again
    assert positions.gap(T, 0, 20) is None
    assert table == {f"{T}\x1f0".encode(): b"11"}, "the table lags; memory is exact"


def test_a_commit_past_the_next_offset_to_fold_shows_records_never_folded() -> None:
    positions = Positions({}, every=100)
    assert positions.behind(T, 0, 50) is None, "nothing folded here yet: no judgement"
    positions.folded(T, 0, 40)
    assert positions.behind(T, 0, None) is None, "nothing committed"
    assert positions.behind(T, 0, 41) is None, "committed up to what was folded"
    assert positions.behind(T, 0, 30) is None, "committed behind: records will come again"
    assert positions.behind(T, 0, 44) == Gap(41, 44, takeover=False), "41..43 never folded"
    stored = Positions({f"{T}\x1f0".encode(): b"41"})
    assert stored.behind(T, 0, 44) == Gap(41, 44, takeover=True), "the stored one may lag"
