"""How the demo judges an event from Moodle's enrolments (``streams/demo/checks.py``), and the
summary it prints: fed with made-up emulator answers, no process started."""

from __future__ import annotations

from typing import Any

from streams.demo.checks import Tracked
from streams.demo.display import progress_line
from streams.demo.monitor import Snapshot
from streams.demo.summary import EventResult, Summary
from streams.workload.events import Event
from streams.workload.oracle import Comparison

USERS = {"32600001": 1001}
COURSES = {"2026-INF101": 101, "2026-INF102": 102, "2026-INF103": 103}
SWAP = Event(
    "option_swapped",
    "swap",
    None,
    active=frozenset({("2026-INF101", "32600001"), ("2026-INF103", "32600001")}),
    suspended=frozenset({("2026-INF102", "32600001")}),
    untouched=frozenset({("2026-INF101", "32600001")}),
)


def moodle(*rows: tuple[int, int, int, int]) -> Any:
    """(courseid, status, timecreated, timemodified) rows for user 1001."""

    def read(userid: int) -> list[dict[str, Any]]:
        assert userid == 1001
        return [
            {"courseid": c, "status": s, "timecreated": t0, "timemodified": t1, "enrol": "manual"}
            for c, s, t0, t1 in rows
        ]

    return read


def test_settles_once_added_and_removed_and_the_grace_window_passed() -> None:
    t = Tracked(SWAP, since=100.0, grace_s=15, user_ids=USERS, course_ids=COURSES)
    before = moodle((101, 0, 5, 5), (102, 0, 5, 5))
    assert not t.poll(before, now=101)
    added = moodle((101, 0, 5, 5), (102, 0, 5, 5), (103, 0, 9, 9))
    assert not t.poll(added, now=101.5) and t.added_at == 101.5
    removed = moodle((101, 0, 5, 5), (102, 1, 5, 20), (103, 0, 9, 9))
    assert not t.poll(removed, now=116) and t.removed_at == 116  # untouched: wait grace + 3 s
    assert t.poll(removed, now=118.5) and t.ok
    assert t.seconds() == {"added": 1.5, "removed": 16.0}
    assert "suspended in 2026-INF102 16.0 s later" in t.describe()
    assert "1 unchanged enrolment(s) untouched" in t.describe()


def test_a_flap_settles_the_event_as_failed() -> None:
    t = Tracked(SWAP, since=100.0, grace_s=15, user_ids=USERS, course_ids=COURSES)
    flapped = moodle((101, 0, 5, 7), (102, 1, 5, 20), (103, 0, 9, 9))  # 101 modified
    assert t.poll(flapped, now=102)
    assert not t.ok and t.describe().startswith("FLAP: 1 enrolment(s)")


def test_other_methods_and_courses_are_ignored() -> None:
    event = Event("x", "x", None, active=frozenset({("2026-INF101", "32600001")}))
    t = Tracked(event, since=0.0, grace_s=15, user_ids=USERS, course_ids=COURSES)

    def read(userid: int) -> list[dict[str, Any]]:
        return [
            {"courseid": 101, "status": 0, "timecreated": 1, "timemodified": 1, "enrol": "cohort"},
            {"courseid": 999, "status": 0, "timecreated": 1, "timemodified": 1, "enrol": "manual"},
        ]

    assert not t.poll(read, now=1)


def test_summary_says_matches_with_figures() -> None:
    s = Summary(students=60, seed=1, grace_s=15, courses=469, contract_rows=1500)
    s.compared(Comparison(expected=1467, active=1467))
    s.load_rows, s.load_write_s, s.load_wall_s, s.load_enrolments = 1620, 0.04, 29.5, 1447
    s.events = [EventResult("a", "a", True, "ok", {"added": 1.0, "removed": 16.1})]
    s.moodle_calls, s.moodle_calls_by_function = 10, {"enrol_manual_enrol_users": 10}
    lines = s.lines()
    assert lines[0] == (
        "Moodle matches APOGÉE: 1,467 enrolments expected, 1,467 active; 0 missing, 0 extra, "
        "0 wrongly suspended"
    )
    text = "\n".join(lines)
    assert "(49 enrolments/s)" in text and "removals 16.1 s (grace window 15.0 s)" in text
    assert s.as_json()["matches"] is True


def test_summary_names_what_differs() -> None:
    s = Summary()
    s.compared(Comparison(expected=2, active=1, missing={("2026-INF101", "1")}))
    assert not s.matches and s.verdict.startswith("Moodle DIFFERS from APOGÉE")
    assert any(line.strip().startswith("missing") for line in s.lines())


def test_progress_line() -> None:
    line = progress_line(
        Snapshot(events_in=1234, applied_total=1000, parked_enrolments={"user_not_found": 25}),
        "initial load",
        42,
    )
    assert "events in 1,234" in line and "parked 25 (user_not_found 25)" in line
