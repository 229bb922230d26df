"""The audit's answer, as printed, and the helpers every command shares."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import EnrolmentTuple
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from streams.kafka.reader import PartitionSpan, TopicInfo
from streams.tools import ui
from streams.tools.audit import AuditQuery, AuditResult, Found, footer_lines, header_lines, render

AT = datetime(2026, 3, 10, 14, 2, 11, tzinfo=UTC)


def suspension(user: str = "21000042", course: str = "2026-INF101") -> AuditRecord:
    deleted = SourceRef(
        "IND_CONTRAT_ELP",
        "2026|60000042|L1INF|1|INF101",
        26783432,
        "815",
        committed_ms=int((AT - timedelta(hours=1)).timestamp() * 1000),
        topic="apogee.apogee.ind_contrat_elp",
        partition=2,
        offset=1234,
    )
    iae = SourceRef("INS_ADM_ETP", "2026|60000042|L1INF|1|1", 26779440, "812", committed_ms=1)
    fact = MembershipFact(
        user, FactKind.ELEMENT, "2026", "L1INF", 1, "INF101", provenance=(deleted, iae)
    )
    command = MoodleCommand(
        CommandKind.SUSPEND, course, user, EnrolmentTuple("student", 0, 0, True), facts=(fact,)
    )
    return AuditRecord(
        command=command,
        outcome=Outcome.APPLIED,
        at=AT,
        ws_function="enrol_manual_enrol_users",
        moodle_user_id=1042,
        moodle_course_id=17,
        latency_s=3601.2,
    )


def test_the_why_of_a_suspension_names_the_row_position_commit_and_kafka_record() -> None:
    result = AuditResult(TopicInfo("reconciler.audit", 4, "delete", 400 * 86_400_000), [])
    result.found.append(Found(suspension(), "reconciler.audit", 1, 77, None))
    text = "\n".join(render(result, brief=False))
    assert "2026-03-10 14:02:11Z  2026-INF101  21000042  suspend  applied  1h00m" in text
    assert "call     enrol_manual_enrol_users (user id 1042, course id 17), student" in text
    assert "withdrawn element INF101 of stage L1INF v1, 2026" in text
    assert (
        "changed by IND_CONTRAT_ELP 2026|60000042|L1INF|1|INF101, committed 2026-03-10 13:02:11Z"
        in text
    )
    assert "lsn/scn 26783432  tx 815  apogee.apogee.ind_contrat_elp[2]@1234" in text
    assert "row        INS_ADM_ETP 2026|60000042|L1INF|1|1" in text
    assert "lineage" not in render(result, brief=True)[2:][0] and len(render(result, True)) == 3


def test_every_printed_line_fits_in_100_columns() -> None:
    long = suspension(user="2" * 30, course="2026-" + "X" * 60)
    span = PartitionSpan("reconciler.audit", 0, 10, 10_000_000, 10, 10_000_000)
    result = AuditResult(TopicInfo("reconciler.audit", 4, "delete", -1), [span])
    result.found += [
        Found(long, "reconciler.audit", 0, 1, None),
        Found(suspension(), "t", 0, 2, None),
    ]
    result.read = Counter({0: 2})
    query = AuditQuery(frozenset({"21000042"}), frozenset({"2026-INF101"}), AT, AT)
    lines = (
        header_lines(result, "kafka:9092", query, AT) + render(result, False) + footer_lines(result)
    )
    assert max(len(line) for line in lines) <= ui.WIDTH
    assert any("WARNING: the window starts before the retained history on p0" in x for x in lines)


def test_the_byte_test_finds_exactly_the_students_records() -> None:
    record = suspension()
    raw = record.model_dump_json().encode()
    assert any(n in raw for n in AuditQuery(frozenset({"21000042"})).needles())
    assert not any(n in raw for n in AuditQuery(frozenset({"2100004"})).needles())
    assert AuditQuery(frozenset({"21000042"}), frozenset({"2026-INF101"})).matches(record)
    assert not AuditQuery(courses=frozenset({"2026-INF102"})).matches(record)
    assert not AuditQuery(since=AT + timedelta(seconds=1)).matches(record)
    assert AuditQuery(until=AT, outcomes=frozenset({Outcome.APPLIED})).matches(record)
    assert not AuditQuery(kinds=frozenset({CommandKind.ENROL})).matches(record)


def test_the_footer_carries_a_digest_of_the_matched_records() -> None:
    result = AuditResult(TopicInfo("t", 1, "delete", None), [])
    empty = footer_lines(result)[1]
    result.found.append(Found(suspension(), "t", 0, 0, 5))
    assert footer_lines(result)[1] != empty
    assert (
        '"kafka": {"topic": "t", "partition": 0, "offset": 0, "timestamp_ms": 5}' in result.jsonl()
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-10", datetime(2026, 3, 10, tzinfo=UTC)),
        ("2026-03-10T14:02", datetime(2026, 3, 10, 14, 2, tzinfo=UTC)),
        ("2026-03-10 14:02:05Z", datetime(2026, 3, 10, 14, 2, 5, tzinfo=UTC)),
        ("2026-03-10T15:02+01:00", datetime(2026, 3, 10, 14, 2, tzinfo=UTC)),
        ("now", AT),
        ("yesterday", AT - timedelta(days=1)),
        ("2h", AT - timedelta(hours=2)),
        ("30m", AT - timedelta(minutes=30)),
        ("3d", AT - timedelta(days=3)),
    ],
)
def test_times_on_the_command_line(text: str, expected: datetime) -> None:
    assert ui.parse_moment(text, now=AT) == expected


def test_a_bad_time_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="use 2026-03-10"):
        ui.parse_moment("last tuesday", now=AT)


def test_a_table_squeezes_one_column_to_fit() -> None:
    lines = ui.render_table(("a", "b"), [["x" * 80, "y" * 80]], squeeze=1)
    assert max(map(len, lines)) == ui.WIDTH and lines[2].endswith("…")
    assert ui.render_table(("n",), [[5], [100]], right=(0,))[2] == "  5"


def test_durations_read_at_a_glance() -> None:
    assert [ui.fmt_duration(s) for s in (None, 3.24, 75, 3601.2, 200_000)] == [
        "-",
        "3.2s",
        "1m15s",
        "1h00m",
        "2d07h",
    ]


def test_exit_codes_are_fixed() -> None:
    assert [int(e) for e in ui.Exit] == [0, 1, 2, 3, 4, 5]


def test_prose_is_folded_within_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    ui.say("word " * 60)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and max(map(len, lines)) <= ui.WIDTH and lines[1].startswith("  ")


def test_progress_draws_only_where_asked() -> None:
    with ui.progress("reading", 10, enabled=True) as advance:
        advance(4)
        advance(6)
    with ui.progress("reading", None) as quiet:  # stderr is not a terminal under pytest
        quiet(3)
