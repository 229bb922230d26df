"""What the pipeline benchmarks share: the stack, a benchmark year in APOGÉE, the emulator and
workers as child processes, and readers of what the worker wrote to Kafka.

Not a test module: the benchmarks print figures. Every benchmark here runs on the real local
stack (``reconciler stack up``; the same ``RECONCILER_STACK_*`` settings apply), with its own
application id and topics, so runs never see each other's state.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, Message, TopicPartition

from streams.applier.gateway import REQUIRED_CAPABILITIES
from streams.demo.capture import end_offsets as topic_end_offsets
from streams.demo.capture import wait_for_key
from streams.devstack import Stack, children
from streams.kafka.settings import TopicNames
from streams.pipeline.topics import TABLES, course_events

TOKEN = "bench0123456789abcdef0123456789a"
BASE = 95_000_000  # COD_IND range of the benchmark's students (tests use 60 M–90 M)
YEAR = "2026"
IDLE_100_NEW_S = 0.4407  # calibrated profile: enrol 100 new rows on one PHP worker (§11)


def etu(i: int) -> int:
    return BASE + 10_000_000 + i


def elp(k: int) -> str:
    return f"BN{k:05d}"


def seed(students: int, courses: int) -> dict[str, Any]:
    return {
        "site": {"version": "4.4", "max_input_vars": 5000},
        "users": [{"id": 3, "username": "ws"}]
        + [{"id": 100 + i, "username": f"b{i}", "idnumber": str(etu(i))} for i in range(students)],
        "courses": [
            {
                "id": 10 + k,
                "shortname": elp(k),
                "idnumber": f"{YEAR}-{elp(k)}",
                "instances": [{"enrol": "manual"}],
            }
            for k in range(courses)
        ],
        "tokens": [
            {
                "token": TOKEN,
                "userid": 3,
                "capabilities": list(REQUIRED_CAPABILITIES),
                "assignable_roles": [3, 4, 5],
            }
        ],
    }


# -- APOGÉE side (SQL runs inside PostgreSQL: the loader is never the bottleneck) -------------

CLEAN = [
    "DELETE FROM apogee.ind_contrat_elp WHERE cod_ind BETWEEN %(lo)s AND %(hi)s",
    "DELETE FROM apogee.ins_adm_etp WHERE cod_ind BETWEEN %(lo)s AND %(hi)s",
    "DELETE FROM apogee.individu WHERE cod_ind BETWEEN %(lo)s AND %(hi)s",
]
LOAD = [
    "INSERT INTO apogee.individu (cod_ind, cod_etu, lib_nom_pat_ind) "
    "SELECT %(base)s + g, %(base)s + 10000000 + g, 'BENCH' "
    "FROM generate_series(%(a)s::int, %(b)s::int) g",
    "INSERT INTO apogee.ins_adm_etp (cod_anu, cod_ind, cod_etp, cod_vrs_vet, num_occ_iae, "
    "eta_iae) SELECT %(year)s, %(base)s + g, 'BENCH', 1, 1, 'E' "
    "FROM generate_series(%(a)s::int, %(b)s::int) g",
    # element k of student g: (7g + 13k) mod courses, distinct for k < courses / gcd(13, courses)
    "INSERT INTO apogee.ind_contrat_elp (cod_anu, cod_ind, cod_etp, cod_vrs_vet, cod_elp, "
    "tem_prc_ice) SELECT %(year)s, %(base)s + g, 'BENCH', 1, "
    "'BN' || lpad(((7 * g + 13 * k) %% %(courses)s)::text, 5, '0'), 'N' "
    "FROM generate_series(%(a)s::int, %(b)s::int) g, generate_series(1, %(elements)s::int) k",
]


def load(dsn: str, students: int, courses: int, elements: int, per_tx: int = 2000) -> None:
    """``students × elements`` contract rows, ``per_tx`` students per transaction."""
    with psycopg.connect(dsn) as conn:
        for a in range(0, students, per_tx):
            params = {
                "base": BASE,
                "a": a,
                "b": min(students, a + per_tx) - 1,
                "year": YEAR,
                "courses": courses,
                "elements": elements,
            }
            with conn.transaction():
                for statement in LOAD:
                    conn.execute(statement, params)


def student_elements(i: int, courses: int, elements: int) -> list[str]:
    return [elp((7 * i + 13 * k) % courses) for k in range(1, elements + 1)]


@dataclass
class Changes:
    """One-row transactions on a loaded year, each one Moodle change: half add a student to a
    course they do not follow (an enrolment), half delete one of the loaded contract rows (a
    suspension, once the grace has passed)."""

    dsn: str
    students: int
    courses: int
    elements: int
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    touched: set[tuple[int, str]] = field(default_factory=set)
    n: int = 0

    def run(self, rate: float, count: int) -> tuple[int, float]:
        """``count`` changes at ``rate`` per second; returns (changes, seconds taken)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            start = time.monotonic()
            for n in range(count):
                target = start + n / rate
                if (wait := target - time.monotonic()) > 0:
                    time.sleep(wait)
                self.one(conn)
            return count, time.monotonic() - start

    def one(self, conn: psycopg.Connection[Any]) -> None:
        self.n += 1
        while True:
            i = self.rng.randrange(self.students)
            own = student_elements(i, self.courses, self.elements)
            if self.n % 2 == 0:
                element = self.rng.choice(own)
            else:
                element = elp(self.rng.randrange(self.courses))
                if element in own:
                    continue
            if (i, element) not in self.touched:
                break
        self.touched.add((i, element))
        if self.n % 2 == 0:
            conn.execute(
                "DELETE FROM apogee.ind_contrat_elp WHERE cod_ind = %s AND cod_elp = %s",
                (BASE + i, element),
            )
        else:
            conn.execute(
                "INSERT INTO apogee.ind_contrat_elp (cod_anu, cod_ind, cod_etp, cod_vrs_vet,"
                " cod_elp, tem_prc_ice) VALUES (%s, %s, 'BENCH', 1, %s, 'N')",
                (YEAR, BASE + i, element),
            )


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    child: children.Child
    http_port: int
    data_dir: Path

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/status", timeout=10) as r:
            return dict(json.loads(r.read()))

    def applied(self) -> int:
        return int(self.status()["applied_total"])

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus sample over the series matching ``labels``."""
        text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
                continue
            series, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def ready_in(self, timeout_s: float) -> float:
        """Start the process and return the seconds until ``/readyz`` answers 200."""
        t0 = time.monotonic()
        self.child.start().wait_http(f"http://127.0.0.1:{self.http_port}/readyz", timeout_s)
        return time.monotonic() - t0


@dataclass
class Bench:
    """One benchmark run: the stack, a work directory, and the children it started."""

    name: str
    stack: Stack = field(default_factory=Stack)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: list[children.Child] = field(default_factory=list)
    emu_port: int = 0

    def __post_init__(self) -> None:
        # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the children are stopped
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.stack.up(report=lambda line: None)
        self.work = Path(".state/bench") / f"{self.name}-{self.run_id}"
        self.work.mkdir(parents=True, exist_ok=True)

    @property
    def dsn(self) -> str:
        return self.stack.postgres.dsn()

    @property
    def bootstrap(self) -> str:
        return self.stack.cfg.bootstrap_servers

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self.started):
            child.stop()

    def clean(self) -> None:
        """Remove an earlier run's rows, then wait until Debezium has published the deletes (a
        marker row committed after them): workers start at the end of the CDC topics."""
        individu = f"{TopicNames().cdc_prefix}individu"
        since = topic_end_offsets(self.bootstrap, individu)
        marker = BASE - 1
        with psycopg.connect(self.dsn) as conn, conn.transaction():
            for statement in CLEAN:
                conn.execute(statement, {"lo": BASE - 1, "hi": BASE + 999_999})
            conn.execute(
                "INSERT INTO apogee.individu (cod_ind, lib_nom_pat_ind) VALUES (%s, 'MARK')",
                (marker,),
            )
        if not wait_for_key(self.bootstrap, individu, {"cod_ind": marker}, since, 1800):
            raise SystemExit("Debezium did not capture the cleanup within 30 min")

    def emulator(self, students: int, courses: int, profile: str, workers: int) -> str:
        (self.work / "seed.json").write_text(json.dumps(seed(students, courses)))
        self.emu_port = free_port()
        emulator = children.emulator(
            self.work / "seed.json",
            self.emu_port,
            self.work / "emulator.log",
            "--profile",
            profile,
            "--workers",
            str(workers),
        )
        self.started.append(emulator)
        emulator.start().wait_http(f"{self.emu_url}/_emulator/health", 120)
        return self.emu_url

    @property
    def emu_url(self) -> str:
        return f"http://127.0.0.1:{self.emu_port}"

    def emu_stats(self, reset: bool = False) -> dict[str, Any]:
        if reset:
            httpx.post(f"{self.emu_url}/_emulator/stats", timeout=30).raise_for_status()
        return dict(httpx.get(f"{self.emu_url}/_emulator/stats", timeout=30).json())

    def emu_profile(self, profile: str, workers: int) -> None:
        httpx.post(
            f"{self.emu_url}/_emulator/server",
            json={"profile": profile, "workers": workers},
            timeout=30,
        ).raise_for_status()

    def app_env(self, app_id: str, **extra: str) -> dict[str, str]:
        return {
            "MOODLE_URL": self.emu_url,
            "MOODLE_TOKEN": TOKEN,
            "MOODLE_MAX_INPUT_VARS": "5000",
            "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "RECONCILER_APP_ID": app_id,
            "RECONCILER_START_FROM": "latest",
            "RECONCILER_LOG_LEVEL": "warning",
            "RECONCILER_TOPIC_AUDIT": f"{app_id}.audit",
            "RECONCILER_TOPIC_CONTROL": f"{app_id}.control",
            "RECONCILER_TOPIC_DEADLETTER": f"{app_id}.deadletter",
            "RECONCILER_TOPIC_MAPPING": f"{app_id}.mapping",
            "RECONCILER_TOPIC_SHADOW": f"{app_id}.shadow",
            # the mass-removal guard is tested elsewhere; here every removal goes through
            "RECONCILER_GUARD_COURSE_MAX_COUNT": "1000000",
            "RECONCILER_GUARD_COURSE_MAX_SHARE": "1",
            "RECONCILER_GUARD_GLOBAL_MAX_COUNT": "100000000",
            "RECONCILER_GUARD_GLOBAL_MAX_SHARE": "1",
            **extra,
        }

    def worker(self, env: dict[str, str], name: str = "worker") -> Worker:
        """A worker (not started) with its own HTTP port and data directory."""
        port = free_port()
        data = self.work / f"{name}-data"
        full = {**env, "RECONCILER_HTTP_PORT": str(port), "RECONCILER_DATA_DIR": str(data)}
        child = children.worker(full, self.work / f"{name}.log")
        self.started.append(child)
        return Worker(child, port, data)

    def wait_applied(self, worker: Worker, target: int, timeout_s: float, every: int = 0) -> float:
        """Seconds until the worker's ``applied_total`` reaches ``target`` (progress printed
        every ``every`` applied changes when set)."""
        t0, last = time.monotonic(), -1
        while (done := worker.applied()) < target:
            if time.monotonic() - t0 > timeout_s:
                raise SystemExit(f"{self.name}: {done}/{target} applied after {timeout_s:.0f} s")
            if every and done // every != last // every:
                print(f"  {time.monotonic() - t0:6.0f}s applied {done:,}", flush=True)
            last = done
            time.sleep(0.5)
        return time.monotonic() - t0


def wipe(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Sampler:
    """A child's RSS every 2 s in a thread."""

    child: children.Child
    samples: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(2.0):
            if self.child.alive():
                self.samples.append(self.child.rss())

    def start(self) -> Sampler:
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def peak_mb(self) -> int:
        return round(max(self.samples, default=0) / 2**20)


# -- reading what was written ----------------------------------------------------------------

Offsets = dict[tuple[str, int], int]


def _consumer() -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": Stack().cfg.bootstrap_servers,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 2**20,
        }
    )


def end_offsets(topics: Sequence[str]) -> Offsets:
    c = _consumer()
    try:
        out = {}
        for topic in topics:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        c.close()


def quiet(topics: Sequence[str], still_s: float = 5.0, timeout_s: float = 600) -> Offsets:
    """End offsets once they have not moved for ``still_s`` (the worker has caught up)."""
    deadline = time.monotonic() + timeout_s
    last, since = end_offsets(topics), time.monotonic()
    while time.monotonic() - since < still_s:
        if time.monotonic() > deadline:
            raise SystemExit(f"{topics} still being written after {timeout_s:.0f} s")
        time.sleep(1.0)
        now = end_offsets(topics)
        if now != last:
            last, since = now, time.monotonic()
    return last


def records(start: Offsets, end: Offsets, timeout_s: float = 900) -> Iterator[Message]:
    """Every record in ``[start, end)`` per partition."""
    c = _consumer()
    try:
        left = {tp: e for tp, e in end.items() if e > start.get(tp, 0)}
        c.assign([TopicPartition(t, p, start.get((t, p), 0)) for t, p in left])
        deadline = time.monotonic() + timeout_s
        while left and time.monotonic() < deadline:
            for msg in c.consume(10_000, 1.0):
                if msg.error() is not None:
                    continue
                tp = (msg.topic(), msg.partition())
                if tp not in left or msg.offset() >= left[tp]:
                    continue
                yield msg
                if msg.offset() + 1 >= left[tp]:
                    del left[tp]
        if left:
            raise SystemExit(f"records not all read within {timeout_s:.0f} s: {sorted(left)}")
    finally:
        c.close()


def changelogs(app_id: str) -> list[str]:
    return [f"{app_id}-{table}-changelog" for table in TABLES]


def byte_sizes(start: Offsets, end: Offsets) -> dict[str, int]:
    """Key + value bytes written per topic between two snapshots of end offsets."""
    sizes: dict[str, int] = {}
    for msg in records(start, end):
        sizes[msg.topic()] = (
            sizes.get(msg.topic(), 0) + len(msg.key() or b"") + len(msg.value() or b"")
        )
    return sizes


@dataclass
class Span:
    """How many records a stage wrote, and between which record timestamps (ms)."""

    count: int = 0
    first_ms: int = 0
    last_ms: int = 0

    def add(self, ts_ms: int) -> None:
        self.count += 1
        self.first_ms = ts_ms if not self.first_ms else min(self.first_ms, ts_ms)
        self.last_ms = max(self.last_ms, ts_ms)

    def rate_from(self, origin_ms: int) -> float:
        """Records per second from ``origin_ms`` (when the work began) to the last record."""
        seconds = (self.last_ms - origin_ms) / 1000
        return self.count / seconds if seconds > 0 else 0.0


def span(start: Offsets, end: Offsets) -> Span:
    out = Span()
    for msg in records(start, end):
        out.add(msg.timestamp()[1])
    return out


def cdc_topics() -> list[str]:
    return list(TopicNames().cdc)


def course_events_topic(app_id: str) -> str:
    return course_events(app_id)


def changelog_bytes(
    bench: Bench,
    worker: Worker,
    app_id: str,
    students: int,
    courses: int,
    elements: int,
    count: int,
) -> dict[str, Any]:
    """Changelog bytes written per source change over ``count`` one-row changes (50/s) on a
    loaded year, each one Moodle change; the changelogs must be still before and after (the
    load's own results are folded into the ledger behind the applies)."""
    before = quiet(changelogs(app_id))
    applied = worker.applied()
    made, _ = Changes(bench.dsn, students, courses, elements).run(rate=50.0, count=count)
    bench.wait_applied(worker, applied + made, 600)
    sizes = byte_sizes(before, quiet(changelogs(app_id)))
    return {
        "changelog_bytes_per_change": round(sum(sizes.values()) / max(made, 1)),
        "changelog_bytes_by_table": {
            topic.removeprefix(f"{app_id}-").removesuffix("-changelog"): round(b / made)
            for topic, b in sorted(sizes.items())
        },
    }


# -- figures and printing -------------------------------------------------------------------


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    if len(values) < 2:
        return {"p50": None, "p95": None, "p99": None}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 3), "p95": round(q[94], 3), "p99": round(q[98], 3)}


def machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}, "
        f"load {load:.1f} at start"
    )


def emit(result: dict[str, Any], rows: Sequence[tuple[str, object]]) -> None:
    """One JSON line (for tools), then a table (for people)."""
    print(json.dumps(result), flush=True)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(flush=True)
