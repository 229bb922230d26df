"""Fault-injection runs: a steady APOGÉE load, faults on the stack and on Moodle, the figures.

* :class:`Load` — a thread committing APOGÉE edits for a test's slice at a steady pace, one
  edit per transaction, as staff make them (new students, contract rows added, dropped,
  swapped, re-saved, administrative enrolments cancelled and restored).
* :func:`heal_stack` — Kafka and Kafka Connect running again, the connector RUNNING (fixtures
  call it in ``finally``, so a failed test never leaves the stack broken).
* :func:`audit_duplicates` — Moodle changes applied more than once, from the audit topic.
* :class:`Figures` — what a run measured, printed in the terminal summary of the run.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from streams.devstack import Stack
from streams.devstack.errors import StackError
from streams.devstack.stack import CONNECTOR_NAME
from streams.workload.oracle import (
    Comparison,
    MoodleRoster,
    compare,
    expected_enrolments,
    moodle_enrolments,
)
from tests.support.e2e import YEAR, Run, eventually
from tests.support.kafka import end_offsets, read_all

# The suite's worker: RocksDB tables (a SIGKILL loses no state), short Moodle timeouts and a
# short faust session (a killed member leaves the group after 10 s, not faust's 60), and the
# mass-removal guard out of the way (the load cancels enrolments; the guard has its own tests).
WORKER_ENV = {
    "RECONCILER_STORE": "rocksdb",
    "MOODLE_TIMEOUT_S": "1.5",
    "MOODLE_MAX_ATTEMPTS": "3",
    "MOODLE_MAX_RETRY_AFTER_S": "2",
    "BROKER_SESSION_TIMEOUT": "10",
    "RECONCILER_GUARD_COURSE_MAX_COUNT": "1000000",
    "RECONCILER_GUARD_COURSE_MAX_SHARE": "1",
    "RECONCILER_GUARD_GLOBAL_MAX_COUNT": "1000000",
    "RECONCILER_GUARD_GLOBAL_MAX_SHARE": "1",
    # the share test also compares the window's removals with the active count: a course with
    # churn removes more than it holds over a day; a floor no course reaches turns it off
    "RECONCILER_GUARD_SHARE_FLOOR": "1000000",
}

# Lines printed at the end of the run (tests/faults/conftest.py: pytest_terminal_summary).
FIGURES: list[str] = []


def report(line: str) -> None:
    """One line of figures: printed now (``-s``) and in the run's terminal summary."""
    print(line)
    FIGURES.append(line)


# -- the load -------------------------------------------------------------------------------
Statement = tuple[str, Sequence[Any]]


@dataclass
class _Student:
    created: bool = False
    iae: str = "E"
    elements: set[str] = field(default_factory=set)


class Load:
    """APOGÉE edits for ``students`` students of the run's slice, ``rate`` transactions/s.

    The SQL oracle is the judge, so the writer keeps only what it needs to make valid edits
    (which rows exist). Errors in the thread are kept and re-raised by :meth:`stop`.
    """

    def __init__(
        self,
        run: Run,
        elements: Sequence[str],
        students: int,
        rate: float,
        seed: int = 12,
    ) -> None:
        self.run = run
        self.elements = list(elements)
        self.model = [_Student() for _ in range(students)]
        self.rate = rate
        self.rng = random.Random(seed)
        self.kinds: Counter[str] = Counter()
        self.rows = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="apogee-load", daemon=True)

    @property
    def transactions(self) -> int:
        return sum(self.kinds.values())

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        if self.error is not None:
            raise AssertionError(f"the APOGÉE writer failed: {self.error!r}") from self.error

    def _main(self) -> None:
        try:
            with psycopg.connect(self.run.services.postgres_dsn) as conn:
                next_at = time.monotonic()
                while not self._stop.is_set():
                    with conn.transaction():
                        kind, statements = self._edit()
                        for sql, params in statements:
                            conn.execute(sql, params)
                    self.kinds[kind] += 1
                    self.rows += len(statements)
                    next_at += 1.0 / self.rate
                    # pacing the writer (a steady rate), not waiting for a condition
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    # -- edits: (kind, statements of one transaction) -----------------------------------------
    def _edit(self) -> tuple[str, list[Statement]]:
        new = [i for i, s in enumerate(self.model) if not s.created]
        if new and (self.rng.random() < 0.35 or len(new) == len(self.model)):
            return "new student", self._new(self.rng.choice(new))
        i = self.rng.choice([i for i, s in enumerate(self.model) if s.created])
        wanted = self.rng.choice(["add", "drop", "drop", "swap", "resave", "cancel", "restore"])
        for kind in (wanted, "add", "restore", "cancel"):  # the last two: one always applies
            statements: list[Statement] = getattr(self, f"_{kind}")(i)
            if statements:
                return kind, statements
        raise AssertionError("unreachable: a student is either enrolled (E) or cancelled (A)")

    def _new(self, i: int) -> list[Statement]:
        s = self.model[i]
        s.created = True
        s.elements = set(self.rng.sample(self.elements, self.rng.randint(2, 4)))
        r = self.run
        return [r.person(i), r.enrolment(i), *(r.contract(i, e) for e in sorted(s.elements))]

    def _add(self, i: int) -> list[Statement]:
        s = self.model[i]
        free = sorted(set(self.elements) - s.elements)
        if not free:
            return []
        element = self.rng.choice(free)
        s.elements.add(element)
        return [self.run.contract(i, element)]

    def _drop(self, i: int) -> list[Statement]:
        s = self.model[i]
        if not s.elements:
            return []
        element = self.rng.choice(sorted(s.elements))
        s.elements.discard(element)
        return [self.run.uncontract(i, element)]

    def _swap(self, i: int) -> list[Statement]:
        """An option swapped: one row deleted, another inserted, in one transaction."""
        s = self.model[i]
        free = sorted(set(self.elements) - s.elements)
        if not s.elements or not free:
            return []
        old, new = self.rng.choice(sorted(s.elements)), self.rng.choice(free)
        s.elements = (s.elements - {old}) | {new}
        return [self.run.uncontract(i, old), self.run.contract(i, new)]

    def _resave(self, i: int) -> list[Statement]:
        """APOGÉE re-saves a contract: every row deleted and inserted again, unchanged."""
        s = self.model[i]
        if not s.elements:
            return []
        rows = sorted(s.elements)
        return [
            *(self.run.uncontract(i, e) for e in rows),
            *(self.run.contract(i, e) for e in rows),
        ]

    def _cancel(self, i: int) -> list[Statement]:
        return self._iae(i, "E", "A")

    def _restore(self, i: int) -> list[Statement]:
        return self._iae(i, "A", "E")

    def _iae(self, i: int, old: str, new: str) -> list[Statement]:
        s = self.model[i]
        if s.iae != old:
            return []
        s.iae = new
        sql = "UPDATE apogee.ins_adm_etp SET eta_iae = %s WHERE cod_ind = %s AND cod_anu = %s"
        return [(sql, (new, self.run.slice.cod_ind(i), YEAR))]


@contextlib.contextmanager
def running(load: Load) -> Iterator[Load]:
    """The load started, and stopped whatever happens."""
    load.start()
    try:
        yield load
    finally:
        if load._thread.is_alive():
            load.stop()


async def converge(run: Run, elements: Sequence[str], timeout_s: float, what: str) -> float:
    """Wait until Moodle equals SQL for ``elements``; seconds it took. At the deadline the
    error says how they differ and what the worker holds back (guard, parking)."""
    started = time.monotonic()

    async def matches() -> bool:
        return await run.matches_sql(elements) == ""

    try:
        await eventually(matches, timeout_s, what)
    except AssertionError as exc:
        differs = await run.matches_sql(elements)
        try:  # the default worker may be the one a test killed
            status = {
                k: run.status().get(k) for k in ("held", "parked_courses", "parked_enrolments")
            }
        except OSError as down:
            status = {"status": f"not answered: {down}"}
        raise AssertionError(f"{exc}: {differs}; {status}") from None
    return time.monotonic() - started


# -- records the students agent never folded ------------------------------------------------
CDC_TOPICS = (
    "apogee.apogee.individu",
    "apogee.apogee.ins_adm_etp",
    "apogee.apogee.ind_contrat_elp",
)
Position = tuple[str, int, int]


def cdc_ends(run: Run) -> dict[str, dict[int, int]]:
    """Where each CDC partition ends now (the records a test makes come after)."""
    return {t: end_offsets(run.services.bootstrap_servers, t) for t in CDC_TOPICS}


def never_folded(run: Run, since: dict[str, dict[int, int]]) -> list[Position]:
    """CDC records of the run's students, written after ``since``, that no state of the
    students table (its changelog) ever held: records the worker consumed — its committed
    offsets are past them — without folding them. Each state keeps, per row, the Kafka
    position of the change that last wrote it (see streams.pipeline.codec)."""
    bootstrap, (low, high) = run.services.bootstrap_servers, run.slice.range
    folded: set[Position] = set()
    for record in read_all(bootstrap, f"{run.app_id}-students-changelog", 120):
        state = record.value
        if not state:
            continue
        topics, person, groups = state[1], state[2], state[3]
        slots = [person] if person else []
        slots += [item[1] for group in groups for items in group[3:5] for item in items]
        folded |= {(topics[slot[6]], slot[7], slot[8]) for slot in slots}
    lost: list[Position] = []
    for topic in CDC_TOPICS:
        for record in read_all(bootstrap, topic, 120):
            key = record.key if isinstance(record.key, dict) else {}
            if record.value is None or not low <= key.get("cod_ind", -1) <= high:
                continue
            where = (topic, record.partition, record.offset)
            if record.offset >= since[topic].get(record.partition, 0) and where not in folded:
                lost.append(where)
    return lost


async def converge_or_lost(
    run: Run,
    elements: Sequence[str],
    timeout_s: float,
    what: str,
    since: dict[str, dict[int, int]],
) -> float:
    """:func:`converge`; when Moodle does not converge, the failure also names the CDC records
    the worker consumed but never folded, if any: the signature of offsets committed past
    records whose outputs were never produced (faust's flush before a commit gave up early,
    fixed in streams/pipeline/flush.py; tests/integration/test_commit_covers_sends.py)."""
    try:
        return await converge(run, elements, timeout_s, what)
    except AssertionError as exc:
        lost = never_folded(run, since)
        if lost:
            report(f"  CDC record(s) consumed but never folded: {lost[:5]}")
            raise AssertionError(
                f"{exc}\nCDC record(s) never folded (the consumer passed them): "
                f"{lost[:5]}{' …' if len(lost) > 5 else ''}"
            ) from exc
        raise


# -- the stack ------------------------------------------------------------------------------
def heal_stack(stack: Stack, timeout_s: float = 180.0) -> None:
    """Kafka and Connect up, the connector and its task RUNNING (restarted if FAILED)."""
    stack.kafka.start()
    stack.connect.start()
    stack.connect.register()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            stack.connect.wait_running(CONNECTOR_NAME, max(5.0, deadline - time.monotonic()))
            return
        except StackError:
            if time.monotonic() >= deadline:
                raise
            # a task that failed while Kafka was away: restart it, as an operator would
            httpx.post(
                f"{stack.cfg.connect_url}/connectors/{CONNECTOR_NAME}/restart",
                params={"includeTasks": "true", "onlyFailed": "true"},
                timeout=30,
            )


# -- what the worker and Moodle say -----------------------------------------------------------
def metric_total(url: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples on ``url``/metrics matching ``labels``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for match in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def change_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """One change to one enrolment: course, user, kind, role and the source changes behind it
    (each fact's first provenance: table, key, LSN/SCN, txId — not the Kafka offset, which a
    re-emitted CDC record changes)."""
    command = record["command"]
    sources = frozenset(
        (p["table"], p["key"], p["log"], p["tx"])
        for fact in command["facts"]
        for p in fact["provenance"][:1]
    )
    role = command["enrolment"]["role"]
    return (command["course"], command["user"], command["kind"], role, sources)


@dataclass(frozen=True)
class Duplicates:
    applied: int  # audit records with outcome "applied"
    changes: int  # distinct changes among them
    by_kind: dict[str, int]  # repeats by command kind

    @property
    def repeated(self) -> int:
        return self.applied - self.changes


async def exact_and_explained(
    run: Run, elements: Sequence[str]
) -> tuple[MoodleRoster, Comparison, list[dict[str, Any]]]:
    """Moodle equals SQL exactly (0 missing, 0 extra, 0 wrongly suspended), and the audit
    topic's last applied change of each enrolment is what Moodle holds."""
    courses = [run.slice.course(e) for e in elements]
    async with run.client() as client:
        roster = await moodle_enrolments(client, courses)
    expected = expected_enrolments(run.services.postgres_dsn, run.slice.range)
    verdict = compare(expected, roster)
    assert (len(verdict.missing), len(verdict.extra), len(verdict.suspended)) == (0, 0, 0)
    records = audit_records(run)
    moodle = {(c, u): s for c, users in roster.courses.items() for u, s in users.items()}
    assert last_applied(records) == moodle, "the audit topic explains every Moodle enrolment"
    return roster, verdict, records


def audit_records(run: Run) -> list[dict[str, Any]]:
    return [r.value for r in read_all(run.services.bootstrap_servers, f"{run.app_id}.audit", 120)]


def audit_duplicates(records: Sequence[dict[str, Any]]) -> Duplicates:
    applied = [r for r in records if r["outcome"] == "applied"]
    counts = Counter(change_key(r) for r in applied)
    by_kind: Counter[str] = Counter()
    for key, n in counts.items():
        if n > 1:
            by_kind[key[2]] += n - 1
    return Duplicates(len(applied), len(counts), dict(by_kind))


def last_applied(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(course, user) → "active" or "suspended", as the last applied audit record left it."""
    state: dict[tuple[str, str], str] = {}
    for r in records:
        if r["outcome"] != "applied":
            continue
        command = r["command"]
        suspended = command["kind"] in ("suspend", "unenrol")
        state[(command["course"], command["user"])] = "suspended" if suspended else "active"
    return state


def emulator_stats(run: Run) -> dict[str, Any]:
    return dict(run.emulator_get("/_emulator/stats"))


def injected(stats: dict[str, Any], *outcomes: str) -> int:
    """Answers of these kinds the emulator gave (injected errors, timeouts, maintenance)."""
    return sum(int(stats["by_outcome"].get(o, 0)) for o in outcomes)


def log_problems(run: Run) -> list[str]:
    """Lines of the workers' logs saying an agent or service crashed and was restarted."""
    pattern = re.compile(r"Crashed reason=|Restarting dead|Traceback")
    return [
        f"{worker.log.name}: {line}"
        for worker in run.workers
        for line in worker.log.read_text(errors="replace").splitlines()
        if pattern.search(line)
    ]
