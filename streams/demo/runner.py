"""The demo, step by step: stack, emulator, worker, initial load, events, verdict.

Everything the demo starts (the emulator, the worker) is a child process stopped in
``finally``, whatever happens; the stack stays up. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from streams.demo.capture import end_offsets, wait_for_key
from streams.demo.checks import Tracked
from streams.demo.display import Display, fmt_s, progress_line
from streams.demo.monitor import Emulator, Monitor, Snapshot, Worker
from streams.demo.summary import EventResult, Summary
from streams.devstack import Stack, StackConfig
from streams.devstack.children import Child, emulator, worker
from streams.devstack.errors import StackError
from streams.devstack.process import tail
from streams.kafka.settings import TopicNames
from streams.moodle import MoodleClient, MoodleSettings
from streams.workload.database import remove_range, upsert_reference, write
from streams.workload.events import Event, option_swap, story
from streams.workload.generator import COD_IND_BASE, MAX_STUDENTS, Part, Year, generate_year
from streams.workload.moodle_seed import emulator_seed
from streams.workload.oracle import (
    compare,
    expected_enrolments,
    expected_from_rows,
    moodle_enrolments,
)
from streams.workload.rows import STUDENT_TABLES, Insert, Tables, Transaction, row_changes

__all__ = ["DemoError", "DemoOptions", "run_demo"]

DEMO_RANGE = (COD_IND_BASE + 1, COD_IND_BASE + MAX_STUDENTS)
MARKER = COD_IND_BASE  # a row committed after the cleanup, just below the demo's range
_MARKER_ROW = {"cod_etu": None, "lib_nom_pat_ind": "DEMO", "lib_nom_usu_ind": "DEMO",
               "lib_pr1_ind": "marker", "cod_nne_ind": None}  # fmt: skip
KEEP_RUNS = 5  # run directories (seed, logs) kept under <state>/demo
# The emulator costs calls as the measured Moodle 4.4 site did, with 4 PHP workers serving at
# once, so the figures mean something (the default "instant" profile costs nothing).
EMULATOR_FLAGS = ("--profile", "calibrated", "--workers", "4")
EMULATOR_PROFILE = "calibrated, 4 PHP workers"


class DemoError(RuntimeError):
    """The demo could not get to its verdict (a part did not start, a deadline passed)."""


@dataclass(frozen=True)
class DemoOptions:
    students: int = 1500
    seed: int = 2026
    grace_s: float = 15.0
    follow: bool = False
    park_retry_s: float = 5.0
    load_timeout_s: float = 600.0
    events_timeout_s: float = 180.0
    follow_every_s: float = 2.0
    shadow: bool = False  # the cut-over runbook beside the Database method (demo/shadow.py)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_free(host: str, port: int) -> bool:
    """Nobody listens there (connections of an earlier worker in TIME_WAIT do not count:
    the worker's server binds with SO_REUSEADDR, as this check does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class Demo:
    def __init__(
        self,
        options: DemoOptions,
        display: Display,
        cfg: StackConfig,
        on_verdict: Callable[[Summary], None],
    ) -> None:
        self.o = options
        self.on_verdict = on_verdict
        self.display = display
        self.cfg = cfg
        self.summary = Summary(students=options.students, seed=options.seed)
        self.summary.grace_s = options.grace_s
        self.app_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        self.summary.app_id = self.app_id
        self.run_dir = cfg.state_dir / "demo" / self.app_id
        self.summary.logs = str(self.run_dir)
        self.token = secrets.token_hex(16)
        self.children: list[Child] = []
        self.monitor: Monitor | None = None
        self.tables = Tables()
        self.rows_written = 0  # changes to the student tables (one CDC event each)
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.verdict_done = False

    # -- the whole run -----------------------------------------------------------------------
    def run(self) -> Summary:
        try:
            self._run()
        except (DemoError, StackError, psycopg.Error, httpx.HTTPError, OSError) as exc:
            self.summary.error = f"{type(exc).__name__}: {exc}"
        except KeyboardInterrupt:
            if not self.verdict_done:
                self.summary.error = "interrupted"
        finally:
            if not self.verdict_done:
                self.summary.wall_s = time.monotonic() - self.started
            self.display.close()
            self._stop_children()
        return self.summary

    def _run(self) -> None:
        stack = self._stack_up()
        year = generate_year(self.o.students, self.o.seed)
        self.year = year
        self.dsn = stack.postgres.dsn()
        self._prepare_database(year)
        emu = self._start_emulator(year)
        self._start_worker(emu)
        self.display.follow(self._snapshot)
        self._initial_load(year)
        self._events(year)
        self._verdict(year)
        self.summary.wall_s = time.monotonic() - self.started
        self.on_verdict(self.summary)
        if self.o.follow:
            self._follow(year)

    # -- steps -------------------------------------------------------------------------------
    def _stack_up(self) -> Stack:
        stack = Stack(self.cfg)
        self.display.step(f"Local stack (state in {self.cfg.state_dir})")
        t0 = time.monotonic()
        timings = stack.up(report=lambda line: None)
        self.summary.stack_up_s = time.monotonic() - t0
        parts = ", ".join(f"{name} {fmt_s(s)}" for name, s in timings.items())
        self.display.note(f"all parts healthy in {fmt_s(self.summary.stack_up_s)} ({parts})")
        return stack

    def _prepare_database(self, year: Year) -> None:
        load = year.initial_load()
        self.summary.contract_rows = sum(
            1 for tx in load for op in tx if op.table == "ind_contrat_elp"
        )
        self.display.step(
            f"APOGÉE year {year.cod_anu}-{int(year.cod_anu) + 1}: {len(year.students):,} "
            f"students (seed {year.seed}), {self.summary.contract_rows:,} contract rows, "
            f"COD_IND {year.cod_ind_range[0]}–{year.cod_ind_range[1]}"
        )
        topic = f"{TopicNames().cdc_prefix}individu"
        since = end_offsets(self.cfg.bootstrap_servers, topic)
        with psycopg.connect(self.dsn) as conn:
            upsert_reference(conn, year.reference_rows())
            removed = remove_range(conn, (MARKER, DEMO_RANGE[1]))
            if removed:
                write(conn, (Insert("individu", {**_MARKER_ROW, "cod_ind": MARKER}),))
        if removed:
            self._wait_captured(removed, topic, since)

    def _wait_captured(self, removed: int, topic: str, since: dict[int, int]) -> None:
        """The deletes reach Kafka before the worker takes its position at the end."""
        t0 = time.monotonic()
        key = {"cod_ind": MARKER}
        if not wait_for_key(self.cfg.bootstrap_servers, topic, key, since, 180):
            raise DemoError(
                f"Debezium did not capture the cleanup within 180 s (no {key} on {topic})"
            )
        self.display.note(
            f"removed {removed:,} rows left by an earlier demo run (captured by Debezium in "
            f"{fmt_s(time.monotonic() - t0)}, before the worker starts)"
        )

    def _start_emulator(self, year: Year) -> Emulator:
        _prune_runs(self.run_dir.parent, keep=KEEP_RUNS - 1)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        seed = self._seed(year)
        seed_file = self.run_dir / "moodle-seed.json"
        seed_file.write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
        self.courses = [c["idnumber"] for c in seed["courses"]]
        self.course_ids = {c["idnumber"]: c["id"] for c in seed["courses"]}
        self.user_ids = {u["idnumber"]: u["id"] for u in seed["users"] if u.get("idnumber")}
        self.summary.courses = len(self.courses)
        self.summary.moodle_profile = EMULATOR_PROFILE
        port = _free_port(self.cfg.host)
        child = emulator(seed_file, port, self.run_dir / "moodle-emulator.log", *EMULATOR_FLAGS)
        self.children.append(child.start())
        self.moodle_url = f"http://{self.cfg.host}:{port}"
        child.wait_http(f"{self.moodle_url}/_emulator/health", 60)
        self.display.step(
            f"Moodle emulator on {self.moodle_url} ({EMULATOR_PROFILE}): "
            f"{len(seed['users']) - 2:,} "
            f"student accounts, {len(self.courses):,} courses with a manual enrolment method"
        )
        return Emulator(self.moodle_url)

    def _seed(self, year: Year) -> dict[str, Any]:
        return emulator_seed(year, self.token)

    def _worker_env(self) -> dict[str, str]:
        host, port = self.cfg.host, self.cfg.worker_metrics_port
        if not _port_free(host, port):
            port = _free_port(host)
            self.display.note(
                f"port {self.cfg.worker_metrics_port} is taken: the worker serves on {port} "
                "(Prometheus will not scrape this run)"
            )
        self.worker_url = f"http://{host}:{port}"
        env = {
            "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": self.cfg.bootstrap_servers,
            "RECONCILER_PARTITIONS": str(self.cfg.topic_partitions),
            "RECONCILER_HTTP_HOST": host,
            "RECONCILER_HTTP_PORT": str(port),
            "RECONCILER_APP_ID": self.app_id,
            "RECONCILER_START_FROM": "latest",
            "RECONCILER_DATA_DIR": str(self.run_dir / "worker-data"),
            "RECONCILER_GRACE_S": str(self.o.grace_s),
            "RECONCILER_PARK_RETRY_S": str(self.o.park_retry_s),
            "MOODLE_URL": self.moodle_url,
            "MOODLE_TOKEN": self.token,
        }
        return env

    def _start_worker(self, emu: Emulator) -> None:
        env = self._worker_env()
        child = worker(env, self.run_dir / "worker.log")
        self.children.append(child.start())
        self.display.step(
            f"Worker {self.app_id} (grace window {fmt_s(self.o.grace_s)}, parked work "
            f"retried every {fmt_s(self.o.park_retry_s)}): waiting until ready"
        )
        t0 = time.monotonic()
        child.wait_http(f"{self.worker_url}/readyz", 180)
        self.display.note(
            f"ready in {fmt_s(time.monotonic() - t0)}; status {self.worker_url}/status"
        )
        self.monitor = Monitor(Worker(self.worker_url), emu)
        self.monitor.start()
        self.emu = emu

    def _snapshot(self) -> Snapshot:
        return self.monitor.latest if self.monitor else Snapshot()

    # -- waiting ------------------------------------------------------------------------------
    def _until(self, what: str, condition: Callable[[Snapshot], bool], timeout_s: float) -> None:
        assert self.monitor is not None
        deadline = time.monotonic() + timeout_s
        while True:
            snapshot = self.monitor.fresh()
            if condition(snapshot):
                return
            self._check_children()
            if time.monotonic() > deadline:
                figures = progress_line(snapshot, self.display.phase, self.display.elapsed)
                raise DemoError(f"{what}: not within {fmt_s(timeout_s)}; last figures {figures}")

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive():
                raise DemoError(
                    f"{child.name} exited ({child.returncode()}); log {child.log}:\n"
                    f"{tail(child.log, 20)}"
                )

    def _commit(self, conn: psycopg.Connection[Any], tx: Transaction) -> None:
        write(conn, tx)
        self.tables.apply(tx)
        self.rows_written += row_changes([tx], STUDENT_TABLES)

    # -- the initial load --------------------------------------------------------------------
    def _initial_load(self, year: Year) -> None:
        load = year.initial_load()
        rows = sum(len(tx) for tx in load)
        missing = year.student(Part.NOT_IN_MOODLE)
        self.display.phase = "initial load"
        self.display.step(
            f"Initial load: {rows:,} rows in {len(load)} transaction(s) (COPY), as APOGÉE "
            "commits a year's enrolment period"
        )
        t0 = time.monotonic()
        with psycopg.connect(self.dsn) as conn:
            for i, tx in enumerate(load, 1):
                self._commit(conn, tx)
                self.display.phase = f"initial load: {i}/{len(load)} transactions committed"
        written = time.monotonic() - t0
        expected = self._expected()
        reachable = {p for p in expected if p[1] != str(missing.cod_etu)}
        self.display.note(
            f"committed in {fmt_s(written)}; the worker should enrol {len(reachable):,} "
            f"(+{len(expected) - len(reachable)} for {missing.username}, who has no Moodle "
            "account yet)"
        )
        self.display.phase = "initial load: waiting for Moodle"
        target = len(reachable)
        self._until(
            "initial load applied",
            lambda s: s.applied_total >= target and s.idle and s.events_in >= self.rows_written,
            self.o.load_timeout_s,
        )
        wall = time.monotonic() - t0
        s = self._snapshot()
        self.summary.load_rows = rows
        self.summary.load_write_s = written
        self.summary.load_wall_s = wall
        self.summary.load_enrolments = target
        self.summary.load_latency_p50_s, self.summary.load_latency_p99_s = s.p50, s.p99
        self.display.step(
            f"Initial load in Moodle: {target:,} enrolments applied {fmt_s(wall)} after the "
            f"first commit ({target / wall:,.0f}/s); {s.moodle_calls:,} Moodle calls; parked "
            f"{s.parked} ({', '.join(f'{r} {n}' for r, n in s.parked_enrolments.items())})"
        )

    def _expected(self) -> set[tuple[str, str]]:
        t = self.tables
        return expected_from_rows(
            t.values("individu"),
            t.values("ins_adm_etp"),
            t.values("ind_contrat_elp"),
            self.year.cod_ind_range,
        )

    # -- the events --------------------------------------------------------------------------
    def _events(self, year: Year) -> None:
        creates_courses = self.emu.creates_courses()
        events = story(year, self.tables, late_course=creates_courses)
        self.display.phase = "events"
        self.display.step("Events of the term, as APOGÉE and Moodle administrators make them")
        if not creates_courses:
            self.display.note(
                "skipped: a course created later (this emulator has no POST /_emulator/courses)"
            )
        tracked: list[Tracked] = []
        with psycopg.connect(self.dsn) as conn:
            for event in events:
                tracked.append(self._play(conn, event))
                self._settle(tracked, block=False)
        self.display.phase = "events: waiting for Moodle"
        self._settle(tracked, block=True)
        self.summary.events = [
            EventResult(t.event.name, t.event.title, t.ok, t.describe(), t.seconds())
            for t in tracked
        ]

    def _play(self, conn: psycopg.Connection[Any], event: Event) -> Tracked:
        self.display.event(event.title)
        for tx in event.transactions:
            self._commit(conn, tx)
        since = time.monotonic()
        parked = None
        if event.parks:
            parked = self._wait_parked(event)
            since = self._moodle_action(event)
        return Tracked(event, since, self.o.grace_s, self.user_ids, self.course_ids, parked)

    def _wait_parked(self, event: Event) -> str:
        if event.parks == "course":
            course = event.course
            assert course is not None
            self._until(
                f"{course} parked", lambda s: course in s.parked_courses, self.o.events_timeout_s
            )
            reason = str(self._snapshot().parked_courses[course].get("reason"))
            self.display.note(f"the worker parks {course}: {reason}")
            return reason
        assert event.student is not None
        user = str(event.student.cod_etu)
        self._until(
            f"{user} parked",
            lambda s: (
                any(u == user for _, u, _ in s.parked_examples)
                or s.parked_enrolments.get("user_not_found", 0) >= len(event.active)
            ),
            self.o.events_timeout_s,
        )
        reasons = {r for _, u, r in self._snapshot().parked_examples if u == user}
        reason = ", ".join(sorted(reasons)) or "user_not_found"
        self.display.note(f"the worker holds {len(event.active)} enrolments of {user}: {reason}")
        return reason

    def _moodle_action(self, event: Event) -> float:
        if event.create_user is not None:
            created = self.emu.create("users", dict(event.create_user))
            self.user_ids[str(created["idnumber"])] = int(created["id"])
            self.display.note(f"Moodle: account {created['username']} created (id {created['id']})")
        if event.create_course is not None:
            created = self.emu.create("courses", dict(event.create_course))
            self.course_ids[str(created["idnumber"])] = int(created["id"])
            self.courses.append(str(created["idnumber"]))
            self.display.note(f"Moodle: course {created['idnumber']} created (id {created['id']})")
        return time.monotonic()

    def _settle(self, tracked: list[Tracked], block: bool) -> None:
        deadline = time.monotonic() + self.o.grace_s + self.o.events_timeout_s
        while True:
            for t in tracked:
                if not t.done and t.poll(self.emu.enrolments):
                    self.display.outcome(t.ok, f"{t.event.name}: {t.describe()}")
            if not block or all(t.done for t in tracked):
                return
            self._check_children()
            if time.monotonic() > deadline:
                late = [t.event.name for t in tracked if not t.done]
                raise DemoError(f"events not seen in Moodle in time: {', '.join(late)}")
            assert self.monitor is not None
            self.monitor.fresh()

    # -- the verdict --------------------------------------------------------------------------
    def _verdict(self, year: Year) -> None:
        self.display.phase = "checking Moodle against APOGÉE"
        self._until(
            "worker idle",
            lambda s: s.idle and s.events_in >= self.rows_written,
            self.o.events_timeout_s,
        )
        s = self._snapshot()
        self.summary.moodle_calls = s.moodle_calls
        self.summary.moodle_calls_by_function = dict(s.moodle_by_function)
        self.display.step(
            "Verdict: SQL over APOGÉE (streams/workload/oracle.py) against every course's "
            "enrolments read through Moodle's web services"
        )
        expected = expected_enrolments(self.dsn, year.cod_ind_range)
        if expected != self._expected():
            self.display.note("warning: the demo's own model of the rows differs from SQL")
        deadline = time.monotonic() + self.o.events_timeout_s
        while True:
            comparison = asyncio.run(self._read_moodle(expected))
            if comparison.matches or time.monotonic() > deadline:
                break
            self.display.note(f"not yet: {comparison.summary()}; reading again")
            self._until("worker idle", lambda s: s.idle, self.o.events_timeout_s)
        self.summary.compared(comparison)
        self.verdict_done = True

    async def _read_moodle(self, expected: set[tuple[str, str]]) -> Any:
        settings = MoodleSettings(
            url=self.moodle_url, token=self.token, rate_per_s=1000.0, rate_burst=100
        )
        async with MoodleClient(settings) as client:
            roster = await moodle_enrolments(client, self.courses)
        return compare(expected, roster)

    # -- --follow ----------------------------------------------------------------------------
    def _follow(self, year: Year) -> None:
        self.display.step(
            f"Following (Ctrl-C stops): a contract edit every {fmt_s(self.o.follow_every_s)}; "
            f"worker {self.worker_url}/status, Moodle {self.moodle_url} (token {self.token})"
        )
        self.display.phase = "following"
        rng = random.Random(f"follow:{year.seed}")
        regular = [s for s in year.students if s.part is Part.REGULAR and len(s.contracts) == 1]
        edits = 0
        with psycopg.connect(self.dsn) as conn:
            while not self.stop.wait(self.o.follow_every_s):
                self._check_children()
                event = option_swap(year, self.tables, rng.choice(regular), rng)
                if event is None:
                    continue
                for tx in event.transactions:
                    self._commit(conn, tx)
                edits += 1
                self.summary.follow_edits = edits
                self.display.event(event.title)
                self.display.phase = f"following: {edits} edit(s) so far; Ctrl-C stops"

    # -- cleanup -----------------------------------------------------------------------------
    def _stop_children(self) -> None:
        """Each step on its own: one that fails never leaves a process running."""
        for child in reversed(self.children):
            try:
                child.stop(timeout_s=20)
            except Exception:
                child.kill()
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                self.monitor.stop()
        if self.children:
            _delete_topics(self.cfg.bootstrap_servers, self.app_id)
        shutil.rmtree(self.run_dir / "worker-data", ignore_errors=True)


def _prune_runs(runs: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest run directories of earlier demos."""
    if not runs.is_dir():
        return
    old = sorted((d for d in runs.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
    for directory in old[: max(0, len(old) - keep)]:
        shutil.rmtree(directory, ignore_errors=True)


def _delete_topics(bootstrap: str, app_id: str) -> None:
    """The run's internal topics (course events, results, changelogs) and its group."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    with contextlib.suppress(Exception):
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{app_id}-")]
        if names:
            for future in admin.delete_topics(names, operation_timeout=10).values():
                with contextlib.suppress(Exception):
                    future.result(15)
        for future in admin.delete_consumer_groups([app_id], request_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(15)


def run_demo(
    options: DemoOptions,
    display: Display,
    on_verdict: Callable[[Summary], None],
    cfg: StackConfig | None = None,
) -> Summary:
    """Run the demo; ``on_verdict`` gets the summary once Moodle has been compared (before
    ``--follow`` goes on), or at the end if the demo failed before that."""
    kind = Demo
    if options.shadow:
        from streams.demo.shadow import ShadowDemo

        kind = ShadowDemo
    demo = kind(options, display, cfg or StackConfig(), on_verdict)
    summary = demo.run()
    if not demo.verdict_done:
        on_verdict(summary)
    return summary
