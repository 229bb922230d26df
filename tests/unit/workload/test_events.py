"""The workload's events, applied to the generated rows, change what the oracle expects as
each says: the oracle (the SQL rule, over rows in memory) is the judge, not the events."""

from __future__ import annotations

import random

import pytest

from streams.workload.events import Event, option_swap, story
from streams.workload.generator import Part, Year, generate_year
from streams.workload.oracle import expected_from_rows
from streams.workload.rows import Delete, Insert, Tables, Update

Pairs = set[tuple[str, str]]


def expected(year: Year, tables: Tables) -> Pairs:
    return expected_from_rows(
        tables.values("individu"),
        tables.values("ins_adm_etp"),
        tables.values("ind_contrat_elp"),
        year.cod_ind_range,
    )


@pytest.fixture(scope="module")
def year() -> Year:
    return generate_year(120, seed=31)


def played(year: Year) -> tuple[list[Event], list[Pairs]]:
    """The story, and the oracle's expectation before the first event and after each."""
    tables = year.tables()
    events = story(year, tables)
    states = [expected(year, tables)]
    for event in events:
        for tx in event.transactions:
            tables.apply(tx)
        states.append(expected(year, tables))
    return events, states


def test_story_is_deterministic(year: Year) -> None:
    assert story(year, year.tables()) == story(year, year.tables())
    other = generate_year(120, seed=32)
    assert [e.title for e in story(other, other.tables())] != [
        e.title for e in story(year, year.tables())
    ]


def test_each_event_changes_the_expectation_as_it_says(year: Year) -> None:
    events, states = played(year)
    for event, before, after in zip(events, states[:-1], states[1:], strict=True):
        assert event.active <= after, event.name
        assert not event.suspended & after, event.name
        assert event.suspended <= before, event.name
        assert event.untouched <= before & after, event.name
        if event.create_user is None:  # a Moodle action changes nothing in APOGÉE
            assert after == (before - event.suspended) | event.active, event.name


def test_contract_resaved_is_a_delete_and_reinsert_in_one_transaction(year: Year) -> None:
    events, states = played(year)
    resave = next(e for e in events if e.name == "contract_resaved")
    (tx,) = resave.transactions
    deletes = [op for op in tx if isinstance(op, Delete)]
    inserts = [op for op in tx if isinstance(op, Insert)]
    assert len(deletes) == len(inserts) == 25 and len(tx) == 50
    assert tx.index(deletes[-1]) < tx.index(inserts[0])  # all deletes first, as APOGÉE does
    assert resave.untouched == resave.active and not resave.suspended
    assert states[1] == states[0]


def test_cancelled_enrolment_removes_exactly_that_students_stage(year: Year) -> None:
    events, states = played(year)
    i = next(i for i, e in enumerate(events) if e.name == "enrolment_cancelled")
    cancel = events[i]
    assert cancel.student is not None
    (tx,) = cancel.transactions
    (op,) = tx
    assert isinstance(op, Update) and op.changes["eta_iae"] == "A"
    gone = states[i] - states[i + 1]
    assert gone == cancel.suspended
    assert {u for _, u in gone} == {str(cancel.student.cod_etu)} and len(gone) >= 21


def test_late_number_and_missing_user_and_late_course(year: Year) -> None:
    events, states = played(year)
    by_name = {e.name: (i, e) for i, e in enumerate(events)}
    i, late = by_name["late_student_number"]
    assert late.student is not None and late.student.part is Part.LATE_NUMBER
    assert states[i + 1] - states[i] == late.active and len(late.active) >= 21
    i, user = by_name["user_created"]
    assert user.transactions == () and user.parks == "user"
    assert user.create_user is not None and user.create_user["idnumber"] in {
        u for _, u in states[0]
    }  # expected from the start: only Moodle lacked the account
    i, course = by_name["course_created"]
    assert course.parks == "course" and course.course == f"{year.cod_anu}-UEL301"
    assert states[i + 1] - states[i] == course.active and len(course.active) == 8
    assert course.create_course is not None and course.create_course["idnumber"] == course.course


def test_story_without_course_endpoint_leaves_the_course_out(year: Year) -> None:
    names = [e.name for e in story(year, year.tables(), late_course=False)]
    assert "course_created" not in names and len(names) == 6


def test_option_swaps_keep_applying_to_the_rows_as_they_stand(year: Year) -> None:
    """--follow's edits: many swaps in a row, each valid against the current rows."""
    tables = year.tables()
    rng = random.Random(5)
    regular = [s for s in year.students if s.part is Part.REGULAR and len(s.contracts) == 1]
    for _ in range(200):
        before = expected(year, tables)
        event = option_swap(year, tables, rng.choice(regular), rng)
        assert event is not None
        for tx in event.transactions:
            tables.apply(tx)
        after = expected(year, tables)
        assert after == (before - event.suspended) | event.active
        assert len(after) == len(before)


@pytest.mark.parametrize("seed", range(12))
def test_the_smallest_demo_still_has_its_whole_story(seed: int) -> None:
    year = generate_year(30, seed=seed)  # `reconciler demo --students` accepts 30 and up
    events = story(year, year.tables())
    assert len(events) == 7
    removals = sum(len(e.suspended) for e in events)
    active = len(expected(year, year.tables()))
    assert removals <= 0.05 * active  # below the global mass-removal guard (5 %)
