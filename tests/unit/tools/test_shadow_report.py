"""``reconciler shadow-report``'s pure parts: the nightly schedule, the shadow topic's records
turned into changes (said once, timed against the nightly run), per-course periods, the
methods report parsed (report rows and downloaded CSV), the CSV output and the gate line."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import EnrolmentTuple
from schemas.lineage import SourceRef
from streams.domain.cutover import Comparison, Item, Standing
from streams.tools import methods, ui
from streams.tools.shadow_report import (
    CourseShadow,
    Nightly,
    changes_of,
    csv_text,
    gate_line,
    now_lines,
    periods,
)
from tests.unit.domain.builders import fact

PARIS = ZoneInfo("Europe/Paris")
NIGHTLY = Nightly(time(2, 0), PARIS)
T = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)  # 11:00 in Paris: the next run is tomorrow 02:00


def record(
    user: str,
    kind: CommandKind = CommandKind.ENROL,
    outcome: Outcome = Outcome.DRY_RUN,
    committed: datetime = T,
    at: datetime = T + timedelta(seconds=2),
) -> AuditRecord:
    ref = SourceRef("IND_CONTRAT_ELP", user, 1, committed_ms=int(committed.timestamp() * 1000))
    lineage = replace(fact(user), provenance=(ref,))
    tuple_ = EnrolmentTuple("student", suspend=kind is CommandKind.SUSPEND)
    command = MoodleCommand(kind, "2026-INF101", user, tuple_, facts=(lineage,))
    return AuditRecord(command=command, outcome=outcome, at=at)


def test_the_next_nightly_run_is_in_local_time_and_strictly_after() -> None:
    assert NIGHTLY.next_after(T) == datetime(2026, 10, 6, 0, 0, tzinfo=UTC)  # 02:00 CEST
    winter = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 01:30 CET: tonight's run still ahead
    assert NIGHTLY.next_after(winter) == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def test_a_would_be_change_is_timed_against_the_nightly_run_and_said_once() -> None:
    changes = changes_of(
        [record("1"), record("1", at=T + timedelta(minutes=5)), record("2")], NIGHTLY
    )
    assert [c.user for c in changes] == ["1", "2"], "a restarted worker says it again: once"
    first = changes[0]
    assert first.stream_s == 2
    assert first.nightly_s == 15 * 3600
    assert first.earlier_s == 15 * 3600 - 2


def test_held_and_parked_changes_are_counted_but_never_earlier() -> None:
    removal = record("3", CommandKind.SUSPEND, Outcome.HELD)
    parked = record("4", outcome=Outcome.PARKED)
    changes = changes_of([removal, parked, record("5", CommandKind.SUSPEND)], NIGHTLY)
    assert [c.earlier_s is None for c in changes] == [True, True, False]
    period = periods(changes)["2026-INF101"]
    assert (period.add, period.remove, period.held, period.parked) == (0, 1, 1, 1)


def test_with_unenrolaction_keep_the_nightly_run_never_removes() -> None:
    keep = Nightly(time(2, 0), PARIS, removes=False)
    removal, addition = changes_of([record("1", CommandKind.SUSPEND), record("2")], keep)
    assert removal.nightly is None and removal.earlier_s is None
    assert addition.earlier_s is not None


def test_the_methods_report_rows_and_its_csv_say_the_same() -> None:
    rows = [
        ["2026-INF101", "1", "External database", "Active"],
        ["2026-INF101", "1", "Manual enrolments", "Suspended"],
        ["2026-INF101", "2", "Base de données externe", "Not current"],
        ["2026-INF102", "3", "manual", "Active"],
    ]
    found = methods.from_rows(rows, {"2026-INF101"})
    assert found == {
        "2026-INF101": {"1": {"database": True, "manual": False}, "2": {"database": False}}
    }


def test_a_downloaded_csv_with_semicolons_and_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "participants.csv"
    text = "Course ID number;ID number;Plugin;Status\n2026-INF101;1;External database;Active\n"
    path.write_text("\ufeff" + text, encoding="utf-8")
    assert methods.from_csv(path) == {"2026-INF101": {"1": {"database": True}}}


def comparison(*items: Item, known: bool = True) -> Comparison:
    return Comparison("2026-INF101", 3, items, known)


def test_the_gate_opens_only_when_no_desired_enrolment_depends_on_the_database_method() -> None:
    alone = Item("1", Standing.OTHER, "active student", "database", database_only=True)
    beside = Item("2", Standing.EXTRA, "active student", "database")
    assert gate_line([CourseShadow("c", "checked", comparison=comparison(alone))])[0] is False
    assert gate_line([CourseShadow("c", "checked", comparison=comparison(beside))])[0] is True
    unknown = comparison(beside, known=False)
    assert gate_line([CourseShadow("c", "checked", comparison=unknown)])[0] is False


def test_the_csv_has_one_row_per_course_with_the_counts() -> None:
    items = (
        Item("1", Standing.OTHER, "active student", "database", database_only=True),
        Item("2", Standing.ADD, "absent", ""),
        Item("3", Standing.EXTRA, "active student", "database"),
    )
    text = csv_text([CourseShadow("2026-INF101", "checked", 10, True, comparison(*items))])
    header, row = text.splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert values["desired"] == "3" and values["in_sync"] == "1"
    assert (values["other"], values["database_only"], values["add"], values["extra"]) == (
        "1",
        "1",
        "1",
        "1",
    )
    assert values["database_method"] == "1"
    assert values["period_add"] == "0", "the period's columns are named apart"


def test_brief_keeps_the_total_rows_only() -> None:
    alone = Item("1", Standing.OTHER, "active student", "database", database_only=True)
    reports = [CourseShadow(f"C{i}", "checked", i, True, comparison(alone)) for i in range(3)]
    assert len(now_lines(reports)) == 2 + 3 + 1
    brief = now_lines(reports, brief=True)
    assert len(brief) == 3 and brief[-1].split()[:5] == ["total", "9", "6", "3", "3"]


def test_a_removal_the_nightly_run_makes_first_is_negative_earlier() -> None:
    """Committed at 01:30 Paris: the 02:00 run acts after 30 min, the streaming path after its
    one-hour grace window: it would have been 30 min *later*, and the report says so."""
    committed = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    late = record("1", CommandKind.SUSPEND, committed=committed, at=committed + timedelta(hours=1))
    (change,) = changes_of([late], NIGHTLY)
    assert change.earlier_s == -1800
    assert ui.fmt_duration(change.earlier_s) == "-30m00s"
