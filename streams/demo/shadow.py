"""``reconciler demo --shadow``: the README's cut-over runbook, played on the demo's data.

The emulated Moodle starts as a site run by the nightly Database method (``enrol_database``)
would be: every course has a ``database`` instance holding the enrolments last night's sync
made from the initial load — less the students enrolled in APOGÉE since (*missing*), plus
stale ones the sync keeps that APOGÉE no longer supports (*extra*, ``unenrolaction`` keep) —
and the custom report on *Course participants* that says through which method each user is
enrolled (``core_reportbuilder_retrieve_report``, report 7). Then, as the runbook says:

1. the worker in shadow mode (``RECONCILER_SHADOW=true``) over the initial load and the term's
   events: no write call (the emulator's call log), ``reconciler shadow-report``;
2. ``reconciler cutover``: the worker would enrol the Database-only students beside;
3. writes on (the same worker's state, no replay): it enrols them; ``shadow-report`` again,
   whose gate must say the Database method may be disabled;
4. the Database method disabled in Moodle; the verdict compares Moodle with APOGÉE as the
   plain demo does (the stale enrolments went inactive with it).

The reports are printed as they come and kept in the run directory (``shadow-report-*.txt``).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg

from streams.demo.capture import caught_up
from streams.demo.runner import Demo, DemoError
from streams.devstack.children import worker
from streams.workload.generator import Year
from streams.workload.moodle_seed import emulator_seed
from streams.workload.oracle import expected_from_rows
from streams.workload.rows import Tables

__all__ = ["REPORT_ID", "ShadowDemo", "database_seed"]

REPORT_ID = 7
MISSING_SHARE = 0.03  # enrolled in APOGÉE after last night's sync
EXTRA_SHARE = 0.01  # kept by the sync although APOGÉE no longer supports them
READS = frozenset(
    {
        "core_webservice_get_site_info",
        "core_course_get_courses_by_field",
        "core_enrol_get_enrolled_users",
        "core_user_get_users_by_field",
        "core_reportbuilder_retrieve_report",
    }
)


def database_seed(year: Year, token: str) -> dict[str, Any]:
    """The demo's seed with last night's Database-method enrolments and the methods report."""
    seed = emulator_seed(year, token)
    load = Tables().apply_all(year.initial_load())
    pairs = sorted(
        expected_from_rows(
            load.values("individu"),
            load.values("ins_adm_etp"),
            load.values("ind_contrat_elp"),
            year.cod_ind_range,
        )
    )
    rng = random.Random(f"database-method:{year.seed}")
    users = {u["idnumber"]: u["id"] for u in seed["users"] if u.get("idnumber")}
    held: dict[str, set[int]] = {}
    for course, user in pairs:
        if user in users and rng.random() >= MISSING_SHARE:
            held.setdefault(course, set()).add(users[user])
    stale = list(users.values())
    for course in list(held):
        for _ in range(max(1, round(EXTRA_SHARE * len(held[course])))):
            held[course].add(rng.choice(stale))  # may hit a wanted one: then not extra
    for course in seed["courses"]:
        members = sorted(held.get(course["idnumber"], ()))
        course["instances"] = [
            {"enrol": "manual"},
            {"enrol": "database", "roleid": 5, "enrolments": members},
        ]
    seed["reports"] = [{"id": REPORT_ID, "name": "Enrolment methods"}]
    service = next(u for u in seed["users"] if u["id"] == seed["tokens"][0]["userid"])
    service["capabilities"] = [*service.get("capabilities", []), "moodle/reportbuilder:view"]
    return seed


class ShadowDemo(Demo):
    """The demo with the Database method beside it, shadow mode first (see the module doc)."""

    def _seed(self, year: Year) -> dict[str, Any]:
        seed = database_seed(year, self.token)
        held = sum(len(i.get("enrolments", [])) for c in seed["courses"] for i in c["instances"])
        self.display.note(
            f"the Database method holds {held:,} enrolments (last night's sync); "
            f"methods report {REPORT_ID} on Course participants"
        )
        return seed

    def _worker_env(self) -> dict[str, str]:
        env = super()._worker_env()
        env["RECONCILER_SHADOW"] = "true"
        env["RECONCILER_TOPIC_SHADOW"] = f"{self.app_id}-shadow"  # deleted with the run
        self.env = env
        return env

    # -- 1. shadow mode ---------------------------------------------------------------------
    def _initial_load(self, year: Year) -> None:
        load = year.initial_load()
        self.display.phase = "initial load (shadow mode)"
        self.display.step(f"Initial load: {sum(len(tx) for tx in load):,} rows, shadow mode")
        with psycopg.connect(self.dsn) as conn:
            for tx in load:
                self._commit(conn, tx)
        self._idle("initial load planned")

    def _events(self, year: Year) -> None:
        from streams.workload.events import story

        self.display.phase = "events (shadow mode)"
        self.display.step("Events of the term (shadow mode: nothing reaches Moodle)")
        with psycopg.connect(self.dsn) as conn:
            for event in story(year, self.tables, late_course=self.emu.creates_courses()):
                self.display.event(event.title)
                for tx in event.transactions:
                    self._commit(conn, tx)
                self._moodle_action(event)
        self._idle("events planned", extra_s=self.o.grace_s + 2)

    def _verdict(self, year: Year) -> None:
        writes = self._writes()
        self.display.step(
            f"Shadow mode: {self._snapshot().moodle_calls:,} Moodle calls, write calls: "
            f"{writes or 'none'}"
        )
        if writes:
            raise DemoError(f"shadow mode wrote to Moodle: {writes}")
        self._report("1-shadow")
        # -- 2. the cut-over ---------------------------------------------------------------
        self.display.step("reconciler cutover --all --methods-report 7")
        before = self._shadowed()
        found = self._cli("2-cutover", "cutover", "--all", "--methods-report", str(REPORT_ID))
        beside = int(found.splitlines()[-1].split()[3])  # the total row's "enrol beside"
        self._until(
            "the cut-over planned",
            lambda s: s.idle and self._shadowed() >= before + beside,
            self.o.load_timeout_s,
        )
        self.display.note(f"{self._shadowed() - before:,} would-be enrolments beside")
        self._report("2-after-cutover")
        # -- 3. writes on ------------------------------------------------------------------
        self._switch_on()
        self._report("3-writes-on")
        # -- 4. the Database method disabled -----------------------------------------------
        self.display.step("Moodle: the Database method disabled (its enrolments go inactive)")
        httpx.post(
            f"{self.moodle_url}/_emulator/instances",
            json={"enrol": "database", "status": 1},
            timeout=30,
        ).raise_for_status()
        super()._verdict(year)

    # -- steps ------------------------------------------------------------------------------
    def _switch_on(self) -> None:
        self.display.step("Writes on: the same worker state, RECONCILER_SHADOW=false")
        old = next(c for c in self.children if c.name.startswith("worker"))
        old.stop(timeout_s=30)
        self.children.remove(old)
        env = {**self.env, "RECONCILER_SHADOW": "false"}
        child = worker(env, self.run_dir / "worker-writes.log")
        self.children.append(child.start())
        child.wait_http(f"{self.worker_url}/readyz", 180)
        t0 = time.monotonic()
        self._until(
            "writes applied",
            lambda s: s.idle and s.applied_total > 0,
            self.o.load_timeout_s,
        )
        s = self._snapshot()
        self.display.note(
            f"{s.applied_total:,} enrolments applied in {time.monotonic() - t0:,.1f} s; "
            f"CDC records read again: {s.events_in:,} (no replay: the state is the tables')"
        )
        self.rows_written = s.events_in  # what this worker read, for the verdict's wait
        results = f"{self.app_id}-course-results"
        self._until(  # the ledger's changelog holds every result: the report reads it
            "results committed",
            lambda _: caught_up(self.cfg.bootstrap_servers, self.app_id, results),
            self.o.events_timeout_s,
        )

    def _idle(self, what: str, extra_s: float = 0.0) -> None:
        deadline = time.monotonic() + extra_s
        self._until(
            what,
            lambda s: s.idle and s.events_in >= self.rows_written and time.monotonic() > deadline,
            self.o.load_timeout_s,
        )

    def _shadowed(self) -> int:
        """The worker's count of would-be changes (``…_changes_total{outcome="shadow"}``)."""
        text = httpx.get(f"{self.worker_url}/metrics", timeout=10).text
        return round(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("reconciler_enrolment_changes_total{")
                and 'outcome="shadow"' in line
            )
        )

    def _writes(self) -> dict[str, int]:
        calls = self.emu.stats().get("by_function", {})
        return {f: int(n) for f, n in calls.items() if f not in READS}

    def _report(self, name: str) -> None:
        self.display.step("reconciler shadow-report --all --methods-report 7")
        self._cli(name, "shadow-report", "--all", "--methods-report", str(REPORT_ID))

    def _cli(self, name: str, *args: str) -> str:
        env = {**os.environ, **self.env, "COLUMNS": "100"}
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode not in (0, 1):
            raise DemoError(f"reconciler {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        (self.run_dir / f"shadow-report-{name}.txt").write_text(done.stdout, encoding="utf-8")
        for line in excerpt(done.stdout):
            self.display.console.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
        return done.stdout


def excerpt(text: str, rows: int = 5) -> list[str]:
    """The report's lines with each table cut to its first ``rows`` courses and its total
    (the whole report is in the run directory)."""
    out: list[str] = []
    in_table, seen, cut = False, 0, 0
    for line in text.splitlines():
        if line.startswith("---"):
            in_table, seen, cut = True, 0, 0
        elif in_table and (not line.strip() or line.startswith("total")):
            if cut:
                out.append(f"… {cut} more course(s)")
            in_table = False
        elif in_table:
            seen += 1
            if seen > rows:
                cut += 1
                continue
        out.append(line)
    return out
