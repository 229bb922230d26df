"""Rounds of faults during a steady load of APOGÉE changes; afterwards Moodle equals SQL exactly.

Each round breaks, one at a time and while staff keep editing APOGÉE: the worker (SIGKILL,
restarted on its RocksDB tables), the Kafka broker and Kafka Connect (SIGKILLed and started
again on odd rounds, stopped and started on even ones: Debezium re-emits what it had not
committed), and Moodle (a storm of HTTP 500/502/503 and database errors, timeouts before and
after the call took effect, slowness, maintenance mode and the 503 maintenance page). Each
fault lasts until it has been seen to bite, and until the load has committed ``HOLD``
more APOGÉE transactions meanwhile (changes pile up behind the fault); after healing, the
pipeline must apply new changes again before the next fault. When the load stops, Moodle must
equal the SQL oracle exactly, the audit topic must explain every enrolment Moodle holds, and
duplicate Moodle calls are counted (reported, not asserted: delivery is at least once).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from streams.devstack import Stack
from streams.devstack.process import port_open
from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, seed, wait_until
from tests.support.faults import (
    WORKER_ENV,
    Load,
    audit_duplicates,
    cdc_ends,
    converge_or_lost,
    emulator_stats,
    exact_and_explained,
    injected,
    log_problems,
    report,
    running,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ELEMENTS = [f"C{k:02d}" for k in range(10)]
STUDENTS = 200  # × scale
RATE = 8.0  # APOGÉE transactions per second
HOLD = 40  # APOGÉE transactions committed while each fault lasts (≈ 5 s at RATE)

STORM = ["http500", "http502", "http503", "dmlwriteexception", "dbconnectionfailed"]


@pytest.fixture
def run(services: Services, tmp_path_factory: pytest.TempPathFactory, scale: int) -> Iterator[Run]:
    students = STUDENTS * scale
    with e2e_run(services, tmp_path_factory.mktemp("fault-rounds"), size=students) as run:
        run.start_emulator(seed(run.slice, ELEMENTS, students))
        yield run


@dataclass
class Fault:
    name: str
    inject: Callable[[], None]
    bites: list[tuple[str, Callable[[], bool]]]  # (what, seen) — each phase holds until seen
    heal: Callable[[], None]
    phase: Callable[[int], None] = lambda _: None  # switch to phase i (Moodle faults)


class Rounds:
    """The faults of one run, their order, and the checks between them."""

    def __init__(self, run: Run, stack: Stack, load: Load) -> None:
        self.run = run
        self.load = load
        self.stack = stack
        # (fault, seconds it lasted, seconds from healing until changes were applied again)
        self.done: list[tuple[str, float, float]] = []

    # -- the pipeline applies changes -------------------------------------------------------
    def applied(self) -> int:
        worker = self.run.workers[-1]
        if not worker.alive():
            raise AssertionError(f"the worker died (exit {worker.returncode()}); {worker.log}")
        try:
            return int(self.run.status()["applied_total"])
        except OSError:
            return -1

    def progress(self, since: int, fault: str) -> None:
        """New changes applied in Moodle after healing: the pipeline works again."""
        wait_until(lambda: self.applied() > since, 180, f"changes applied again after {fault}")

    # -- faults -----------------------------------------------------------------------------
    def faults(self, round_: int) -> list[Fault]:
        hard = round_ % 2 == 1  # odd rounds SIGKILL the broker and Connect, even ones stop them
        faults = [
            self.worker_kill(),
            self.moodle_storm(),
            self.broker_restart(kill=hard),
            self.moodle_timeouts(),
            self.connect_restart(kill=hard),
            self.moodle_slow(),
            self.moodle_maintenance(),
        ]
        if round_ > 1:
            random.Random(round_).shuffle(faults)
        return faults

    def worker_kill(self) -> Fault:
        def inject() -> None:
            before = self.applied()
            wait_until(lambda: self.applied() > before, 60, "the worker applying changes")
            self.run.workers[-1].kill()  # SIGKILL: no flush, no commit, no goodbye

        def dead() -> bool:
            return self.run.workers[-1].returncode() == -signal.SIGKILL

        return Fault("worker SIGKILL", inject, [("worker dead", dead)], self._restart_worker)

    def _restart_worker(self) -> None:
        self.run.start_worker(**WORKER_ENV)  # same app id, same RocksDB data dir

    def broker_restart(self, kill: bool) -> Fault:
        kafka, cfg = self.stack.kafka, self.stack.cfg

        def inject() -> None:
            if kill:
                pid = kafka.proc.pid()
                assert pid is not None, "Kafka is not running"
                os.killpg(pid, signal.SIGKILL)
            else:
                kafka.stop()

        def down() -> bool:
            return not port_open(cfg.host, cfg.kafka_port)

        name = "Kafka broker " + ("SIGKILL + start" if kill else "restart")
        return Fault(name, inject, [("broker port closed", down)], kafka.start)

    def connect_restart(self, kill: bool) -> Fault:
        connect, cfg = self.stack.connect, self.stack.cfg

        def inject() -> None:
            if kill:
                pid = connect.proc.pid()
                assert pid is not None, "Kafka Connect is not running"
                os.killpg(pid, signal.SIGKILL)  # offsets of the last second are not flushed
            else:
                connect.stop()

        def down() -> bool:
            return not port_open(cfg.host, cfg.connect_port)

        def heal() -> None:
            connect.start()
            connect.wait_running("apogee-postgres", 120)

        name = "Kafka Connect " + ("SIGKILL + start" if kill else "restart")
        return Fault(name, inject, [("Connect port closed", down)], heal)

    def moodle(
        self, name: str, phases: list[tuple[str, dict[str, object], Callable[[], bool]]]
    ) -> Fault:
        """A Moodle fault in phases: each phase's faults set until its condition is seen."""

        def phase(i: int) -> None:
            self.run.emulator_post("/_emulator/faults", phases[i][1])

        def heal() -> None:
            self.run.emulator_post(
                "/_emulator/faults",
                {
                    "error_rate": 0,
                    "timeout_rate": 0,
                    "maintenance": False,
                    "http503": False,
                    "when": "before",
                    "latency": {"distribution": "none"},
                },
            )

        return Fault(name, lambda: None, [(what, seen) for what, _, seen in phases], heal, phase)

    def _more(self, n: int, *outcomes: str) -> Callable[[], bool]:
        """Condition: the emulator gave ``n`` more answers of these kinds from now on."""
        start = injected(emulator_stats(self.run), *outcomes)
        return lambda: injected(emulator_stats(self.run), *outcomes) >= start + n

    def moodle_storm(self) -> Fault:
        phases = [
            (f"{kind} answered", {"error_rate": 0.7, "error_kind": kind}, self._lazy(3, kind))
            for kind in STORM
        ]
        return self.moodle("Moodle 5xx storm (" + ", ".join(STORM) + ")", phases)

    def moodle_timeouts(self) -> Fault:
        timeouts = {"timeout_rate": 0.5, "timeout_s": 4}
        return self.moodle(
            "Moodle timeouts (before, and after the call took effect)",
            [
                ("timeouts before", {**timeouts, "when": "before"}, self._lazy(3, "timeout")),
                ("timeouts after", {**timeouts, "when": "after"}, self._lazy(3, "timeout")),
            ],
        )

    def moodle_slow(self) -> Fault:
        slow = {"distribution": "lognormal", "mean_ms": 600, "sigma": 0.5, "max_ms": 1200}
        return self.moodle("Moodle slowness", [("slow answers", {"latency": slow}, self._slow())])

    def moodle_maintenance(self) -> Fault:
        return self.moodle(
            "Moodle maintenance mode, then its 503 page",
            [
                ("sitemaintenance", {"maintenance": True}, self._lazy(3, "sitemaintenance")),
                (
                    "503 maintenance page",
                    {"maintenance": False, "http503": True, "retry_after_s": 1},
                    self._lazy(3, "http503"),
                ),
            ],
        )

    def _lazy(self, n: int, *outcomes: str) -> Callable[[], bool]:
        """:meth:`_more`, counted from the first time it is asked (when the phase starts)."""
        cell: list[Callable[[], bool]] = []

        def seen() -> bool:
            if not cell:
                cell.append(self._more(n, *outcomes))
            return cell[0]()

        return seen

    def _slow(self) -> Callable[[], bool]:
        """At least 5 calls answered since the phase began, in 0.3 s or more on average."""
        cell: list[tuple[int, float]] = []

        def seen() -> bool:
            stats = emulator_stats(self.run)
            answered, mean = int(stats["answered"]), float(stats["mean_answer_s"] or 0)
            if not cell:
                cell.append((answered, answered * mean))
                return False
            n, total = answered - cell[0][0], answered * mean - cell[0][1]
            return n >= 5 and total / n >= 0.3

        return seen

    # -- one fault ------------------------------------------------------------------------
    def play(self, fault: Fault) -> None:
        started = time.monotonic()
        fault.inject()
        for i, (what, seen) in enumerate(fault.bites):
            fault.phase(i)
            wait_until(seen, 120, f"{fault.name}: {what}")
        held = self.load.transactions + HOLD  # changes pile up behind the fault
        wait_until(lambda: self.load.transactions >= held, 120, f"{fault.name}: load goes on")
        fault.heal()
        healed = time.monotonic()
        self.progress(max(self.applied(), 0), fault.name)
        self.done.append((fault.name, healed - started, time.monotonic() - healed))


async def test_rounds_of_faults_during_a_load_converge_exactly(
    run: Run, stack: Stack, scale: int
) -> None:
    run.start_worker(**WORKER_ENV)
    load = Load(run, ELEMENTS, STUDENTS * scale, RATE, seed=scale)
    rounds = Rounds(run, stack, load)
    started = time.monotonic()
    since = cdc_ends(run)  # the records of this test come after
    with running(load):
        wait_until(lambda: rounds.applied() > 0, 120, "the first changes applied")
        for round_ in range(1, scale + 1):
            for fault in rounds.faults(round_):
                rounds.play(fault)
        load.stop()
    converged = await converge_or_lost(
        run, ELEMENTS, 300, "Moodle equals SQL after the faults", since
    )

    roster, verdict, records = await exact_and_explained(run, ELEMENTS)
    assert rounds.applied() >= 0 and run.workers[-1].alive(), "the last worker still runs"

    duplicates = audit_duplicates(records)
    stats = emulator_stats(run)
    faults = len(rounds.done)
    report(
        f"rounds: {scale} round(s), {faults} faults in {time.monotonic() - started:.0f} s; "
        f"load {load.transactions} APOGÉE transactions ({load.rows} rows) at {RATE:g}/s "
        f"on {STUDENTS * scale} students, {len(ELEMENTS)} courses"
    )
    for name, lasted, seconds in rounds.done:
        report(f"  {name}: {lasted:.0f} s, changes applied again {seconds:.1f} s after healing")
    report(
        f"  converged {converged:.1f} s after the load stopped: {verdict.summary()} "
        f"({len(roster.pairs('suspended'))} suspended as they should)"
    )
    report(
        f"  duplicates: audit {duplicates.repeated} change(s) applied more than once "
        f"of {duplicates.changes} ({duplicates.by_kind or 'none'}); emulator "
        f"{stats['rows_unchanged']} row(s) found Moodle already as sent, "
        f"{stats['rows_changed']} changed it; {stats['calls']} calls, answers {stats['by_outcome']}"
    )
    problems = [line for line in log_problems(run) if "Traceback" not in line]
    report(f"  worker logs: {len(problems)} agent crash/restart line(s)")
    print("\n".join(problems[:20]))
