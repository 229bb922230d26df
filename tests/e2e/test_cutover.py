"""Shadow mode and the cut-over from the Database method, on the real stack: a worker process
in shadow mode beside Database-method enrolments, the real CLI (``shadow-report``,
``cutover``), then the same worker switched to writing, then the Database method disabled.

The scenario (one emulator, one app id for both workers):

* ``DA`` — students 0–9 wanted by APOGÉE; the Database method holds 0–5 (active), 20 and 21
  (no longer wanted: *extra*) and 22 (suspended by it). So: 6 present through another method
  only, 4 would be added, 2 extra.
* ``MD`` — no Database method; students 10–39 contracted, then 20 of them deleted in one
  transaction: a mass deletion the guard would hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, eventually, seed, wait_until
from tests.support.kafka import Record, read_all

pytestmark = pytest.mark.e2e

REPORT = 7
READS = {
    "core_webservice_get_site_info",
    "core_course_get_courses_by_field",
    "core_enrol_get_enrolled_users",
    "core_user_get_users_by_field",
    "core_reportbuilder_retrieve_report",
}
DATABASE = [*range(6), 20, 21]


def uid(i: int) -> int:
    return 1000 + i  # the seed's Moodle user id of student i


@pytest.fixture(scope="module")
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with e2e_run(services, tmp_path_factory.mktemp("cutover"), size=100) as run:
        data = seed(run.slice, ["DA", "MD"], 60)
        data["courses"][0]["instances"] = [
            {"enrol": "manual"},
            {
                "enrol": "database",
                "roleid": 5,
                "enrolments": [*map(uid, DATABASE), {"userid": uid(22), "status": 1}],
            },
        ]
        data["reports"] = [{"id": REPORT}]  # the custom report on Course participants
        data["tokens"][0]["capabilities"] += ["moodle/reportbuilder:view"]
        run.start_emulator(data)
        run.env.update({"RECONCILER_GUARD_COURSE_MAX_COUNT": "10"})
        yield run


def cli(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **run.worker_env(), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def report(run: Run) -> dict[str, dict[str, Any]]:
    """``shadow-report --json``: course (or "total") → its object."""
    done = cli(run, "shadow-report", "--all", "--methods-report", str(REPORT), "--json")
    assert done.returncode in (0, 1), done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {r["course"] or "total": r for r in rows}


def report_when(run: Run, course: str, key: str, value: int) -> dict[str, dict[str, Any]]:
    """The report once ``course`` shows ``key`` = ``value``: the tools read the worker's
    changelogs, a few seconds behind it (flushed before each offset commit)."""

    def ready() -> dict[str, dict[str, Any]] | None:
        found = report(run)
        return found if found[course][key] == value else None

    result: dict[str, dict[str, Any]] = wait_until(ready, 30, f"{course}: {key} = {value}")
    return result


def shadowed(run: Run) -> list[Record]:
    return read_all(run.services.bootstrap_servers, f"{run.app_id}.shadow")


def writes(run: Run) -> dict[str, int]:
    calls = run.emulator_get("/_emulator/stats")["by_function"]
    return {f: n for f, n in calls.items() if f not in READS}


def counts(row: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys)


def manual_users(run: Run) -> set[int]:
    rows = run.emulator_get("/_emulator/enrolments?courseid=100")
    return {r["userid"] for r in rows if r["enrol"] == "manual" and r["status"] == 0}


def cdc_folded(run: Run) -> float:
    text = _get(f"{run.worker_url}/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("reconciler_cdc_events_total{") and 'outcome="folded"' in line
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_shadow_then_cut_over_then_writes_then_the_database_method_disabled(
    run: Run,
) -> None:
    da, md = run.slice.course("DA"), run.slice.course("MD")
    shadow = run.start_worker(RECONCILER_SHADOW="true")
    assert run.status()["shadow"] is True
    for i in range(10):
        run.student(i, "DA")
    for i in range(10, 40):
        run.student(i, "MD")
    wait_until(lambda: len(shadowed(run)) >= 34, 90, "34 would-be enrolments on the shadow topic")
    run.sql(*(run.uncontract(i, "MD") for i in range(10, 30)))  # the mass deletion
    wait_until(
        lambda: sum(r.value["outcome"] == "held" for r in shadowed(run)) >= 20,
        90,
        "the mass deletion held by the guard (shadow topic)",
    )

    # -- point 1: no write call; the shadow topic holds the would-be commands with lineage ----
    assert writes(run) == {}, "shadow mode: the emulator's call log shows only reads"
    records = shadowed(run)
    said = sorted((r.value["outcome"], r.value["command"]["kind"]) for r in records)
    assert said.count(("dry_run", "enrol")) == 34
    assert said.count(("held", "suspend")) == 20
    lineage = records[0].value["command"]["facts"][0]["provenance"][0]
    assert lineage["table"] in ("INDIVIDU", "INS_ADM_ETP", "IND_CONTRAT_ELP")  # made it true
    assert lineage["committed_ms"] and lineage["offset"] is not None and lineage["log"]
    assert {r.key for r in records} == {da, md}
    assert all(r.value["command"]["user"] != run.slice.etu(0) for r in records), (
        "a Database-only student is foreign until the cut-over"
    )

    # -- point 2: the report's counts ---------------------------------------------------------
    keys = ("desired", "in_sync", "other", "database_only", "add", "beside", "extra", "held")
    now = report(run)
    assert counts(now[da], *keys) == (10, 0, 6, 6, 4, 0, 2, 0)
    assert counts(now[md], *keys) == (10, 0, 0, 0, 10, 0, 0, 0)
    assert counts(now["total"], *keys) == (20, 0, 6, 6, 14, 0, 2, 0)
    assert now["total"]["ready"] is False, "6 desired enrolments held by the Database method alone"
    period = now["total"]["period"]
    assert (period["add"], period["remove"], period["held"]) == (34, 0, 20)
    assert now[md]["period"]["held"] == 20 and now[da]["period"]["add"] == 4
    assert period["earlier_p50_s"] > 0, "streaming acts before the next nightly run"
    table = cli(run, "shadow-report", "--all", "--methods-report", str(REPORT), "--details")
    print(table.stdout)
    assert table.returncode == 1 and "held only by the Database method" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 100
    detail = {tuple(line.split()[:3]) for line in table.stdout.splitlines()}
    assert (da, run.slice.etu(20), "extra") in detail and (da, run.slice.etu(6), "add") in detail
    brief = cli(run, "shadow-report", da, md, "--methods-report", str(REPORT), "--brief")
    rows = [line.split() for line in brief.stdout.splitlines() if line.startswith("total")]
    assert [r[:6] for r in rows] == [
        ["total", "20", "0", "6", "6", "14"],
        ["total", "34", "0", "20", "0", rows[1][5]],
    ]
    csv = cli(run, "shadow-report", "--all", "--methods-report", str(REPORT), "--csv")
    assert len(csv.stdout.splitlines()) == 3, csv.stdout

    # -- the cut-over, still in shadow: the worker says it would enrol them beside -------------
    done = cli(run, "cutover", "--all", "--methods-report", str(REPORT))
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: sum(r.value["command"]["user"] == run.slice.etu(0) for r in shadowed(run)),
        60,
        "would enrol student 0 beside the Database enrolment",
    )
    after = report_when(run, da, "beside", 6)
    assert counts(after[da], "add", "beside", "other", "database_only") == (10, 6, 0, 6)
    assert writes(run) == {}
    again = cli(run, "cutover", "--all", "--methods-report", str(REPORT), "--json")
    statuses = [json.loads(line)["status"] for line in again.stdout.splitlines()]
    assert statuses == ["nothing to do", "nothing to do"], "run again: nothing sent"

    # -- point 4: shadow off converges Moodle from the same state, no replay ------------------
    shadow.stop()
    run.start_worker()
    assert run.status()["shadow"] is False
    ignore = frozenset((da, run.slice.etu(i)) for i in (20, 21))
    await eventually(lambda: _matches(run, ignore), 120, "Moodle converges with writes on")
    assert cdc_folded(run) == 0, "the desired state came from the tables: no CDC replay"
    assert manual_users(run) == {uid(i) for i in range(10)}, "every desired student, beside"
    assert set(writes(run)) == {"enrol_manual_enrol_users"}, "nothing suspended: never enrolled"

    final = report_when(run, da, "in_sync", 10)
    assert counts(final[da], "in_sync", "database_only", "extra", "add") == (10, 0, 2, 0)
    assert final["total"]["ready"] is True

    # -- then the Database method may be disabled: the desired students keep their course ----
    run.emulator_post("/_emulator/instances", {"enrol": "database", "status": 1})
    assert await _matches(run, frozenset()), "the extra ones lose the course, nobody else"


async def _matches(run: Run, ignore: frozenset[tuple[str, str]]) -> bool:
    return await run.matches_sql(["DA", "MD"], ignore) == ""
