"""The operator tools on the real stack: the real CLI (a process per command, as an operator
runs it) against a real worker, the Moodle emulator, Kafka and APOGÉE's PostgreSQL.

One emulator and one worker serve the module (periodic drift check every few seconds, report
only; the cohort stage on); each test owns its students and elements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.domain.replay import roster_digest
from streams.moodle import Enrolment, Unenrolment
from streams.workload.oracle import expected_enrolments
from tests.support.backends import Services
from tests.support.e2e import YEAR, Run, e2e_run, eventually, seed, wait_until
from tests.support.kafka import end_offsets

pytestmark = pytest.mark.e2e

ELEMENTS = ["CA", "AU", "RA", "RB", "DR", "F1", "F2", "M1", "M2"]
SEEDED = 120
EXTRA_CAPABILITIES = [
    "moodle/cohort:manage",
    "moodle/cohort:assign",
    "moodle/cohort:view",
    "enrol/meta:config",
    "enrol/meta:selectaslinked",
    "moodle/course:enrolconfig",
]


def cohort_of(run: Run) -> str:
    return f"IA-{YEAR}-{run.slice.elp('COH')[:6]}-1"


def promo(run: Run) -> str:
    return f"PROMO-{run.slice.tag}"


@pytest.fixture(scope="module")
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with e2e_run(services, tmp_path_factory.mktemp("tools"), size=300) as run:
        data = seed(run.slice, ELEMENTS, SEEDED)
        data["tokens"][0]["capabilities"] += EXTRA_CAPABILITIES
        # A promotion's course synced with the cohort the reconciler will keep (Moodle's
        # cohort sync does the enrolling; the reconciler never touches this course).
        data["cohorts"] = [{"id": 50, "idnumber": cohort_of(run), "name": "L1", "members": []}]
        data["courses"].append(
            {
                "id": 300,
                "shortname": promo(run),
                "idnumber": promo(run),
                "instances": [
                    {"enrol": "manual"},
                    {"enrol": "cohort", "cohort": cohort_of(run), "roleid": 5},
                ],
            }
        )
        run.start_emulator(data)
        run.env.update(
            {
                "RECONCILER_DRIFT_CHECK_S": "3",
                "RECONCILER_DRIFT_CONFIRM_S": "1",
                "RECONCILER_COHORT_TEMPLATE": "IA-{cod_anu}-{cod_etp}-{cod_vrs_vet}",
            }
        )
        run.start_worker()
        yield run


def cli(run: Run, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **run.worker_env(), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def course_id(run: Run, idnumber: str) -> int:
    state = run.emulator_get("/_emulator/state")
    return int(next(c["id"] for c in state["courses"] if c["idnumber"] == idnumber))


def enrolment(run: Run, idnumber: str, userid: int) -> dict[str, Any]:
    rows = run.emulator_get(
        f"/_emulator/enrolments?courseid={course_id(run, idnumber)}&userid={userid}"
    )
    assert len(rows) == 1, rows
    return dict(rows[0])


async def roster_is(run: Run, element: str, expected: dict[str, str]) -> bool:
    return await run.roster(element) == expected


def uid(i: int) -> int:
    return 1000 + i  # the seed's Moodle user id of student i


# -- point 4: CSV batch enrolment ---------------------------------------------------------------
async def test_csv_batch_enrolment_goes_through_the_pipeline_with_file_and_line_lineage(
    run: Run, tmp_path: Path
) -> None:
    course = run.slice.course("CA")
    good = tmp_path / "tutors.csv"
    good.write_text(
        "user;course;role;start;end;action\n"
        f"{run.slice.etu(0)};{course};editingteacher;2026-09-01;2027-01-31;add\n"
        f"{run.slice.etu(1)};{course};student;;;\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "user,course,role,action\n"
        f"{run.slice.etu(2)},{course},tutor,add\n"
        f"{run.slice.etu(3)},{course},student,add\n"
        f",{course},student,add\n"
    )
    topic = f"{run.app_id}-course-events"
    before = end_offsets(run.services.bootstrap_servers, topic)
    refused = cli(run, "enrol-csv", str(bad))
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        "bad.csv:2: unknown role 'tutor' (known: editingteacher, student, teacher)",
        "bad.csv:4: no user",
    ]
    assert end_offsets(run.services.bootstrap_servers, topic) == before, "nothing sent"

    dry = cli(run, "enrol-csv", str(good), "--dry-run")
    assert dry.returncode == 0 and "nothing sent" in dry.stdout
    assert end_offsets(run.services.bootstrap_servers, topic) == before

    sent = cli(run, "enrol-csv", str(good), "--check-moodle")
    assert sent.returncode == 0, sent.stderr
    both = {run.slice.etu(0): "active", run.slice.etu(1): "active"}
    await eventually(lambda: roster_is(run, "CA", both), 60, "CSV lines enrolled")
    teacher = enrolment(run, course, uid(0))
    assert [r["roleid"] for r in teacher["roles"]] == [3]
    assert teacher["timestart"] > 0 and teacher["timeend"] > teacher["timestart"]
    assert enrolment(run, course, uid(1))["timestart"] == 0

    audit = cli(run, "audit", "--course", course, "--student", run.slice.etu(0), "--json")
    assert audit.returncode == 0, audit.stderr
    (record,) = jsonl(audit.stdout)
    (fact,) = record["command"]["facts"]
    assert (fact["kind"], fact["origin"], fact["provenance"][0]["key"]) == (
        "manual",
        "csv",
        "tutors.csv:2",
    )

    removal = tmp_path / "remove.csv"
    removal.write_text(f"user,course,action\n{run.slice.etu(1)},{course},remove\n")
    assert cli(run, "enrol-csv", str(removal)).returncode == 0
    after = {run.slice.etu(0): "active", run.slice.etu(1): "suspended"}
    await eventually(lambda: roster_is(run, "CA", after), 60, "removed after the grace window")


# -- point 1: audit ------------------------------------------------------------------------------
async def test_audit_says_why_a_student_was_suspended(run: Run) -> None:
    run.student(10, "AU")
    await eventually(lambda: roster_is(run, "AU", {run.slice.etu(10): "active"}), 60, "enrolled")
    run.sql(run.uncontract(10, "AU"))
    await eventually(
        lambda: roster_is(run, "AU", {run.slice.etu(10): "suspended"}), 60, "suspended"
    )
    answer = cli(
        run,
        "audit",
        "--student",
        run.slice.etu(10),
        "--course",
        run.slice.course("AU"),
        "--on",
        "today",
    )
    assert answer.returncode == 0, answer.stderr
    out = answer.stdout
    assert "suspend  applied" in out and "enrol    applied" in out
    assert f"withdrawn element {run.slice.elp('AU')} of stage" in out
    assert "changed by IND_CONTRAT_ELP" in out and "apogee.apogee.ind_contrat_elp[" in out
    assert "2 record(s) matched" in out
    assert max(len(line) for line in out.splitlines()) <= 100


# -- point 2: replay -----------------------------------------------------------------------------
async def test_replay_rebuilds_the_rosters_moodle_holds_and_a_what_if_differs(
    run: Run, tmp_path: Path
) -> None:
    for i in (20, 21, 22):
        run.student(i, "RA")
    run.student(23, "RB")
    expected = {run.slice.etu(i): "active" for i in (20, 21, 22)}
    await eventually(lambda: roster_is(run, "RA", expected), 60, "RA enrolled")
    await eventually(lambda: roster_is(run, "RB", {run.slice.etu(23): "active"}), 60, "RB")
    courses = [run.slice.course("RA"), run.slice.course("RB")]
    answer = cli(run, "replay", "--course", courses[0], "--course", courses[1], "--json")
    assert answer.returncode == 0, answer.stderr
    rebuilt = {row["course"]: row for row in jsonl(answer.stdout)}
    sql = expected_enrolments(run.services.postgres_dsn, run.slice.range)
    for course, element in zip(courses, ("RA", "RB"), strict=True):
        in_moodle = await run.roster(element)
        moodle = [(user, "student") for user, status in in_moodle.items() if status == "active"]
        assert rebuilt[course]["digest"] == roster_digest(moodle)
        assert rebuilt[course]["members"] == sum(1 for c, _ in sql if c == course)

    rules = tmp_path / "rules.jsonl"
    rule = {
        "rule_id": "merge",
        "cod_elp": run.slice.elp("RB"),
        "targets": [{"course": "{cod_anu}-" + run.slice.elp("RA")}],
    }
    rules.write_text(json.dumps(rule) + "\n")
    what_if = cli(
        run,
        "replay",
        "--course",
        courses[0],
        "--course",
        courses[1],
        "--mapping",
        str(rules),
        "--json",
    )
    assert what_if.returncode == 1, what_if.stderr
    outcome = {row["course"]: row["what_if"] for row in jsonl(what_if.stdout)}
    assert [(c["kind"], c["user"]) for c in outcome[courses[0]]["commands"]] == [
        ("enrol", run.slice.etu(23))
    ]
    assert outcome[courses[1]]["wanted"] == 0 and outcome[courses[1]]["applied_active"] == 1
    earlier = cli(run, "replay", "--course", courses[0], "--at", "2020-01-01", "--json")
    assert earlier.returncode == 0 and jsonl(earlier.stdout) == []


# -- point 3: diff, the periodic check and repair --------------------------------------------------
def drift_gauge(run: Run) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"{run.worker_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        line.split('kind="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("reconciler_drift_enrolments{")
    }


async def test_diff_reports_drift_the_worker_gauges_it_and_repair_converges(run: Run) -> None:
    for i in (30, 31, 32):
        run.student(i, "DR")
    everyone = {run.slice.etu(i): "active" for i in (30, 31, 32)}
    await eventually(lambda: roster_is(run, "DR", everyone), 60, "enrolled")
    cid = course_id(run, run.slice.course("DR"))
    async with run.client() as client:  # a teacher changes Moodle by hand
        await client.enrol_manual_unenrol_users([Unenrolment(uid(30), cid)])
        await client.enrol_manual_enrol_users([Enrolment(uid(31), cid, 5, suspend=True)])
    wait_until(lambda: drift_gauge(run).get("missing", 0) >= 1, 60, "periodic check found it")
    assert drift_gauge(run).get("mismatched", 0) >= 1  # the suspension by hand

    report = cli(run, "diff", run.slice.course("DR"))
    assert report.returncode == 1, report.stderr
    assert f"{run.slice.etu(30)}  missing" in report.stdout
    assert f"{run.slice.etu(31)}  wrong_status" in report.stdout
    as_json = jsonl(cli(run, "diff", run.slice.course("DR"), "--json").stdout)
    assert sorted(d["kind"] for d in as_json[0]["drift"]) == ["missing", "wrong_status"]

    repaired = cli(run, "diff", run.slice.course("DR"), "--repair", "--wait", "90s")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert await run.roster("DR") == everyone
    assert await run.matches_sql(["DR"]) == ""
    wait_until(lambda: drift_gauge(run).get("missing") == 0, 60, "gauge back to 0")


# -- point 4: cohorts ----------------------------------------------------------------------------
async def test_cohort_members_follow_the_administrative_enrolments_and_moodle_enrols_them(
    run: Run,
) -> None:
    members = (40, 41, 42)
    for i in members:
        run.sql(run.person(i), run.enrolment(i, etp="COH"))
    promotion = {run.slice.etu(i): "active" for i in members}

    async def in_promo() -> dict[str, str]:
        async with run.client() as client:
            from streams.workload.oracle import moodle_enrolments

            found = await moodle_enrolments(client, [promo(run)])
        return dict(found.courses.get(promo(run), {}))

    await eventually(lambda: _has(in_promo, promotion), 60, "cohort synced into the course")
    run.sql(
        ("UPDATE apogee.ins_adm_etp SET eta_iae = 'A' WHERE cod_ind = %s", (run.slice.cod_ind(41),))
    )
    del promotion[run.slice.etu(41)]
    await eventually(lambda: _has(in_promo, promotion, exact=True), 60, "left the cohort")
    audit = cli(run, "audit", "--course", cohort_of(run), "--json")
    rows = jsonl(audit.stdout)
    assert {r["ws_function"] for r in rows} == {
        "core_cohort_add_cohort_members",
        "core_cohort_delete_cohort_members",
    }
    assert [r["command"]["user"] for r in rows if r["command"]["kind"] == "unenrol"] == [
        run.slice.etu(41)
    ]
    # the backfill (for a stage turned on late) reads the same facts from the students table
    backfill = cli(run, "cohorts", "backfill", "--dry-run", "--json")
    assert backfill.returncode == 0, backfill.stderr
    counts = {row["cohort"]: row["members"] for row in jsonl(backfill.stdout)}
    assert counts[cohort_of(run)] == 2
    assert cli(run, "cohorts", "backfill").returncode == 0
    await eventually(
        lambda: _has(in_promo, promotion, exact=True), 30, "a backfill changes nothing"
    )


async def _has(read: Any, expected: dict[str, str], exact: bool = False) -> bool:
    found: dict[str, str] = await read()
    if exact:
        return {u: s for u, s in found.items() if s == "active"} == expected
    return all(found.get(u) == s for u, s in expected.items())


# -- point 4: automatic → manual ----------------------------------------------------------------
async def test_freeze_and_release_leave_the_rosters_as_they_are(run: Run, tmp_path: Path) -> None:
    run.student(50, "F1")
    run.student(51, "F2")
    run.student(53, "M1")
    await eventually(lambda: roster_is(run, "F1", {run.slice.etu(50): "active"}), 60, "F1")
    await eventually(lambda: roster_is(run, "F2", {run.slice.etu(51): "active"}), 60, "F2")
    await eventually(lambda: roster_is(run, "M1", {run.slice.etu(53): "active"}), 60, "M1")
    frozen = cli(run, "freeze", run.slice.course("F1"), "--json")
    assert frozen.returncode == 0 and jsonl(frozen.stdout)[0]["course"] == run.slice.course("F1")
    listing = tmp_path / "courses.txt"
    listing.write_text(f"# archived\n{run.slice.course('F2')}\n")
    released = cli(run, "release", "--file", str(listing))
    assert released.returncode == 0 and "released in 1 course(s)" in released.stdout
    # one APOGÉE edit: both frozen/released students lose their contract, and so does a
    # marker in a course left alone, whose suspension says the grace window has passed
    run.sql(run.uncontract(50, "F1"), run.uncontract(51, "F2"), run.uncontract(53, "M1"))
    run.student(52, "F1")  # wanted now, but the course is frozen
    marker = {run.slice.etu(53): "suspended"}
    await eventually(lambda: roster_is(run, "M1", marker), 60, "marker suspended after grace")
    assert await run.roster("F1") == {run.slice.etu(50): "active"}
    assert await run.roster("F2") == {run.slice.etu(51): "active"}


# -- point 4: meta links and cohort-sync methods --------------------------------------------------
def meta_links(run: Run, meta_course: str) -> set[int]:
    state = run.emulator_get("/_emulator/state")
    course = next(c for c in state["courses"] if c["idnumber"] == meta_course)
    return {i["customint1"] for i in course["instances"] if i["enrol"] == "meta"}


def test_meta_links_are_created_and_removed_from_a_csv(run: Run, tmp_path: Path) -> None:
    m1, m2 = run.slice.course("M1"), run.slice.course("M2")
    links = tmp_path / "links.csv"
    links.write_text(f"meta,course,action\n{m1},{m2},add\n{m1},{run.slice.course('F1')},add\n")
    broken = tmp_path / "broken.csv"
    broken.write_text(f"meta,course\n{m1},NO-SUCH\n{m1},{m1}\n")
    refused = cli(run, "meta", str(broken))
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        "broken.csv:2: no Moodle course with idnumber NO-SUCH",
        "broken.csv:3: a course cannot be linked to itself",
    ]
    assert meta_links(run, m1) == set()
    done = cli(run, "meta", str(links), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["outcome"] for r in jsonl(done.stdout)] == ["applied", "applied"]
    assert meta_links(run, m1) == {course_id(run, m2), course_id(run, run.slice.course("F1"))}
    unlink = tmp_path / "unlink.csv"
    unlink.write_text(f"meta;course;action\n{m1};{m2};remove\n")
    assert cli(run, "meta", str(unlink)).returncode == 0
    assert meta_links(run, m1) == {course_id(run, run.slice.course("F1"))}


def test_cohort_sync_methods_become_a_checked_upload_courses_csv(run: Run, tmp_path: Path) -> None:
    wanted = tmp_path / "methods.csv"
    wanted.write_text(
        f"course,cohort,role,action\n{run.slice.course('M1')},{cohort_of(run)},student,add\n"
        f"{run.slice.course('M2')},{cohort_of(run)},,remove\n"
    )
    out = tmp_path / "upload.csv"
    made = cli(run, "cohorts", "sync-csv", str(wanted), "-o", str(out), "--check-moodle")
    assert made.returncode == 0, made.stdout + made.stderr
    assert out.read_text().splitlines() == [
        "shortname,enrolment_1,enrolment_1_role,enrolment_1_cohortidnumber,"
        "enrolment_1_addtogroup,enrolment_1_disable,enrolment_1_delete",
        f"{run.slice.course('M1')},cohort,student,{cohort_of(run)},0,0,",
        f"{run.slice.course('M2')},cohort,student,{cohort_of(run)},,,1",
    ]
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(f"course,cohort\n{run.slice.course('M1')},IA-NOPE\n")
    refused = cli(
        run, "cohorts", "sync-csv", str(unknown), "-o", str(tmp_path / "x.csv"), "--check-moodle"
    )
    assert refused.returncode == 1 and not (tmp_path / "x.csv").exists()
    assert "unknown.csv:2: no Moodle cohort with idnumber IA-NOPE" in refused.stdout
