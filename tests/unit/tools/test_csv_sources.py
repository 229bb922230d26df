"""The staff's CSV files: every invalid line reported with its number and reason, valid ones
turned into what the pipeline or Moodle takes (manual facts, meta links, Upload courses CSV)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from schemas.facts import FactKind
from streams.tools import cohorts, enrol_csv, meta

ROLES = ("student", "teacher", "editingteacher")
PARIS = ZoneInfo("Europe/Paris")


def reasons(invalid: object) -> dict[int, str]:
    return {i.line: i.reason for i in invalid}  # type: ignore[attr-defined]


# -- enrol-csv -----------------------------------------------------------------------------------
def test_a_valid_file_into_several_courses() -> None:
    text = (
        "user,course,role,start,end,action\n"
        "21000001,2026-INF101,,,,\n"
        "21000002,2026-INF102,editingteacher,2026-09-01,2027-01-31,add\n"
        "21000003,2026-INF101,student,,,remove\n"
    )
    parsed = enrol_csv.parse(text, ROLES, tz=PARIS)
    assert parsed.invalid == ()
    first, second, third = parsed.lines
    assert (first.line, first.user, first.course, first.role, first.add) == (
        2,
        "21000001",
        "2026-INF101",
        "student",
        True,
    )
    assert second.timestart == int(datetime(2026, 9, 1, tzinfo=PARIS).timestamp())
    # an end date includes that whole day
    assert second.timeend == int(datetime(2027, 2, 1, tzinfo=PARIS).timestamp())
    assert (third.add, third.line) == (False, 4)


def test_every_invalid_line_is_reported_with_its_number_and_reason() -> None:
    text = (
        "user;course;role;start;end;action\n"
        "21000001;2026-INF101;tutor;;;add\n"
        ";2026-INF101;student;;;add\n"
        "21000003;2026-INF101;student;2027-01-01;2026-01-01;add\n"
        "21000004;2026-INF101;student;;;delete\n"
        "\n"
        "21000005;2026-INF101;student;31/12/2026;;add\n"
        "21 000006;2026-INF101;student;;;add\n"
        "21000007;;student;;;add\n"
        "21000008;2026-INF101;student;;;add;extra\n"
        "21000009;2026-INF101;student;;;add\n"
        "21000009;2026-INF101;student;;;remove\n"
    )
    parsed = enrol_csv.parse(text, ROLES)
    assert reasons(parsed.invalid) == {
        2: "unknown role 'tutor' (known: editingteacher, student, teacher)",
        3: "no user",
        4: "end is not after start",
        5: "action 'delete' is neither add nor remove",
        7: "start '31/12/2026' is not a date (2026-09-01, 2026-09-01T08:00)",
        8: "user '21 000006' contains a space",
        9: "no course",
        10: "7 fields, the header has 6",
        12: "same user, course and role as line 11",
    }
    assert [x.line for x in parsed.lines] == [11]


def test_one_course_for_the_whole_file() -> None:
    parsed = enrol_csv.parse("user,role\n1,student\n2,teacher\n", ROLES, course="2026-INF101")
    assert {x.course for x in parsed.lines} == {"2026-INF101"}
    other = enrol_csv.parse("user,course\n1,2026-X\n", ROLES, course="2026-INF101")
    assert reasons(other.invalid) == {2: "course 2026-X differs from --course 2026-INF101"}


def test_file_level_problems_are_line_one() -> None:
    assert reasons(enrol_csv.parse("", ROLES).invalid) == {1: "empty file: a header line is needed"}
    bad = enrol_csv.parse("student_number,cours\n1,x\n", ROLES)
    assert set(reasons(bad.invalid)) == {1} and len(bad.invalid) == 3
    assert "no 'course' column" in bad.invalid[1].reason


def test_bom_semicolons_aliases_and_epoch_and_datetime_dates() -> None:
    text = "\ufeffIdNumber;Course_IdNumber;TimeStart;TimeEnd\n1;C;1700000000;2026-09-01T08:30Z\n"
    (line,) = enrol_csv.parse(text, ROLES).lines
    assert line.timestart == 1700000000
    assert line.timeend == int(datetime(2026, 9, 1, 8, 30, tzinfo=UTC).timestamp())


def test_a_quoted_cell_over_two_lines_keeps_the_numbering_right() -> None:
    text = 'user,course,role\n1,C,"stu\ndent"\n2,C,tutor\n'
    parsed = enrol_csv.parse(text, ROLES)
    assert sorted(reasons(parsed.invalid)) == [2, 4]


def test_lines_become_manual_facts_with_their_file_and_line_as_provenance() -> None:
    parsed = enrol_csv.parse("user,course,role,end\n1,A,teacher,2027-01-31\n2,B,,\n", ROLES)
    events = enrol_csv.events(parsed.lines, "csv:tutors", "tutors.csv", "batch-7", 1234)
    assert [e.course for e in events] == ["A", "B"]
    change = events[0].changes[0]
    fact = change.fact
    assert (change.role, change.asserted) == ("teacher", True)
    assert (fact.kind, fact.course, fact.role, fact.origin) == (
        FactKind.MANUAL,
        "A",
        "teacher",
        "csv:tutors",
    )
    assert fact.timeend is not None and fact.timestart is None
    (ref,) = fact.provenance
    assert (ref.table, ref.key, ref.log, ref.tx, ref.committed_ms) == (
        "CSV",
        "tutors.csv:2",
        2,
        "batch-7",
        1234,
    )


def test_a_large_course_is_sent_in_several_events() -> None:
    text = "user,course\n" + "".join(f"{u},BIG\n" for u in range(1, 1202))
    parsed = enrol_csv.parse(text, ROLES)
    events = enrol_csv.events(parsed.lines, "csv", "f.csv", "b", 0)
    assert [len(e.changes) for e in events] == [500, 500, 201]


# -- meta ----------------------------------------------------------------------------------------
def test_meta_links_lines_and_their_problems() -> None:
    text = (
        "meta,course,action,creategroup\n"
        "2026-L1,2026-INF101,add,yes\n"
        "2026-L1,2026-INF102,remove,\n"
        "2026-L1,2026-L1,add,\n"
        "2026-L1,2026-INF101,add,\n"
        "2026-L1,2026-INF103,link,\n"
        "2026-L1,2026-INF104,add,maybe\n"
        ",2026-INF105,add,\n"
    )
    lines, invalid = meta.parse(text)
    assert [(x.line, x.add, x.creategroup) for x in lines] == [(2, True, True), (3, False, False)]
    assert reasons(invalid) == {
        4: "a course cannot be linked to itself",
        5: "same link as line 2",
        6: "action 'link' is neither add nor remove",
        7: "creategroup 'maybe' is neither yes nor no",
        8: "a meta course and a linked course are needed",
    }


# -- cohort-sync methods → Upload courses CSV --------------------------------------------------
def test_cohort_methods_and_their_problems() -> None:
    text = (
        "course,cohort,role,action,group\n"
        "C1,IA-2026-L1INF-1,,add,new\n"
        "C2,IA-2026-L1INF-1,teacher,disable,\n"
        "C3,IA-2026-L1INF-1,,remove,\n"
        "C4,IA-2026-L1INF-1,boss,add,\n"
        "C5,IA-2026-L1INF-1,,archive,\n"
        "C6,IA-2026-L1INF-1,,remove,new\n"
        "C1,IA-2026-L1INF-1,,enable,\n"
        ",IA-2026-L1INF-1,,add,\n"
    )
    lines, invalid = cohorts.parse_methods(text, ROLES)
    assert [x.line for x in lines] == [2, 3, 4]
    assert reasons(invalid) == {
        5: "unknown role 'boss' (known: editingteacher, student, teacher)",
        6: "action 'archive' is not one of add, disable, enable, remove",
        7: "a new group only comes with add",
        8: "same course, cohort and role as line 2",
        9: "a course shortname and a cohort idnumber are needed",
    }


def test_the_upload_courses_csv_moodle_takes() -> None:
    text = (
        "course,cohort,role,action,group\n"
        "C1,IA-A,,add,new\nC2,IA-A,teacher,disable,\nC3,IA-B,,enable,\nC4,IA-B,,remove,\n"
    )
    lines, invalid = cohorts.parse_methods(text, ROLES)
    assert invalid == []
    rows = list(csv.DictReader(io.StringIO(cohorts.upload_csv(lines))))
    assert list(rows[0]) == list(cohorts.UPLOAD_COLUMNS)
    simple = [
        (
            r["shortname"],
            r["enrolment_1"],
            r["enrolment_1_role"],
            r["enrolment_1_cohortidnumber"],
            r["enrolment_1_addtogroup"],
            r["enrolment_1_disable"],
            r["enrolment_1_delete"],
        )
        for r in rows
    ]
    assert simple == [
        ("C1", "cohort", "student", "IA-A", "1", "0", ""),
        ("C2", "cohort", "teacher", "IA-A", "", "1", ""),
        ("C3", "cohort", "student", "IA-B", "", "0", ""),
        ("C4", "cohort", "student", "IA-B", "", "", "1"),
    ]
