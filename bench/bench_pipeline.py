"""End-to-end pipeline benchmark on the real stack: initial load, then a steady stream of changes.

Not a test: it prints figures (one JSON line, then a table). Run with the stack up::

    .venv/bin/python bench/bench_pipeline.py [--students 40000 --courses 5000 --elements 25]
        [--profile instant|calibrated --workers 4] [--rate 100 --seconds 60] [--store rocksdb]

What it measures (issue 7 point 5):

* **initial load**: ``students × elements`` contract rows committed in PostgreSQL (server-side
  ``generate_series``, 2,000 students per transaction); wall time from the first commit until
  the worker has applied every enrolment (``/status`` ``applied_total``), and until Moodle,
  read back through its web services, equals what SQL says (checked on a sample of courses);
* **worker resident memory**: sampled every 2 s (peak and at the end of the load);
* **steady state**: ``--rate`` single-row transactions per second for ``--seconds``
  (alternately a contract row deleted and re-inserted for random students: each one a
  change to one enrolment); commit-to-applied latency p50/p95/p99 from the audit records
  (additions), Moodle calls per source change (emulator call counter), changelog bytes per
  source change (sum of key + value sizes of the records the worker wrote to its changelog
  topics meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import signal
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition

from streams.applier.gateway import REQUIRED_CAPABILITIES
from streams.demo.capture import end_offsets as end_offsets_now
from streams.demo.capture import wait_for_key
from streams.devstack import Stack, children
from streams.kafka.settings import TopicNames
from streams.moodle import MoodleClient, MoodleSettings
from streams.workload.oracle import compare, expected_enrolments, moodle_enrolments

TOKEN = "bench0123456789abcdef0123456789a"
BASE = 80_000_000  # COD_IND range of the benchmark's students
YEAR = "2026"
CAPABILITIES = list(REQUIRED_CAPABILITIES)
CHANGELOGS = ("students", "desired", "ledger", "courses", "control")


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
                "capabilities": CAPABILITIES,
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
    with psycopg.connect(dsn) as conn:
        for a in range(0, students, per_tx):
            b = min(students, a + per_tx) - 1
            params = {
                "base": BASE,
                "a": a,
                "b": b,
                "year": YEAR,
                "courses": courses,
                "elements": elements,
            }
            with conn.transaction():
                for statement in LOAD:
                    conn.execute(statement, params)


def student_elements(i: int, courses: int, elements: int) -> list[str]:
    return [elp((7 * i + 13 * k) % courses) for k in range(1, elements + 1)]


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Sampler:
    """Worker RSS every 2 s in a thread."""

    worker: children.Child
    samples: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(2.0):
            self.samples.append(self.worker.rss())

    def start(self) -> Sampler:
        threading.Thread(target=self.run, daemon=True).start()
        return self


def status(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
        return dict(json.loads(r.read()))


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"b-{uuid.uuid4()}"})
    try:
        out = {}
        for topic in topics:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                out[(topic, p)] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return out
    finally:
        c.close()


def bytes_between(
    bootstrap: str, start: dict[tuple[str, int], int], end: dict[tuple[str, int], int]
) -> dict[str, int]:
    """Key + value bytes of the records in [start, end) per topic."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"b-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    sizes: dict[str, int] = {}
    try:
        todo = {tp: e for tp, e in end.items() if e > start.get(tp, 0)}
        c.assign([TopicPartition(t, p, start.get((t, p), 0)) for t, p in todo])
        left = dict(todo)
        deadline = time.monotonic() + 300
        while left and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            tp = (msg.topic(), msg.partition())
            if tp not in left or msg.offset() >= left[tp]:
                continue
            sizes[tp[0]] = sizes.get(tp[0], 0) + len(msg.key() or b"") + len(msg.value() or b"")
            if msg.offset() + 1 >= left[tp]:
                del left[tp]
        return sizes
    finally:
        c.close()


def audit_latencies(bootstrap: str, topic: str, since_ms: int) -> list[float]:
    """latency_s of the applied additions audited after ``since_ms`` (record timestamp)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"b-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, since_ms) for p in meta.partitions]
        starts = c.offsets_for_times(parts, timeout=10)
        ends = {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
        c.assign([tp for tp in starts if tp.offset >= 0])
        left = {
            tp.partition: ends[tp.partition] for tp in starts if 0 <= tp.offset < ends[tp.partition]
        }
        out: list[float] = []
        deadline = time.monotonic() + 120
        while left and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            record = json.loads(msg.value())
            addition = record["outcome"] == "applied" and record["command"]["kind"] == "enrol"
            if addition and record.get("latency_s") is not None:
                out.append(float(record["latency_s"]))
            if msg.offset() + 1 >= left.get(msg.partition(), 0):
                left.pop(msg.partition(), None)
        return out
    finally:
        c.close()


def quantiles(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        return {"p50": None, "p95": None, "p99": None}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 3), "p95": round(q[94], 3), "p99": round(q[98], 3)}


def steady(
    dsn: str, rate: float, seconds: float, students: int, courses: int, elements: int
) -> int:
    """``rate`` one-row transactions per second: half add a student to a course they do not
    follow (an enrolment), half take back one added earlier (a removal, after the grace)."""
    rng = random.Random(7)
    added: list[tuple[int, str]] = []
    taken: set[tuple[int, str]] = set()
    changes = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            target = start + changes / rate
            if target > now:
                time.sleep(target - now)
            if added and changes % 2 == 1:
                i, element = added.pop(0)
                conn.execute(
                    "DELETE FROM apogee.ind_contrat_elp WHERE cod_ind = %s AND cod_elp = %s",
                    (BASE + i, element),
                )
            else:
                i = rng.randrange(students)
                own = set(student_elements(i, courses, elements))
                element = elp(rng.randrange(courses))
                while element in own or (i, element) in taken:
                    element = elp(rng.randrange(courses))
                taken.add((i, element))
                conn.execute(
                    "INSERT INTO apogee.ind_contrat_elp (cod_anu, cod_ind, cod_etp, cod_vrs_vet,"
                    " cod_elp, tem_prc_ice) VALUES (%s, %s, 'BENCH', 1, %s, 'N')",
                    (YEAR, BASE + i, element),
                )
                added.append((i, element))
            changes += 1
    return changes


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=4000)
    parser.add_argument("--courses", type=int, default=500)
    parser.add_argument("--elements", type=int, default=25)
    parser.add_argument("--profile", default="instant", choices=["instant", "calibrated"])
    parser.add_argument("--workers", type=int, default=4, help="PHP workers of the emulator")
    parser.add_argument(
        "--steady-profile",
        default="calibrated",
        choices=["instant", "calibrated"],
        help="emulator cost profile for the steady phase (switched after the load)",
    )
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--store", default="rocksdb", choices=["rocksdb", "memory"])
    parser.add_argument("--grace-s", type=float, default=5.0, help="short: removals apply too")
    parser.add_argument("--check-courses", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path(".state/bench"))
    args = parser.parse_args()
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the worker and emulator are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = Stack()
    stack.up(report=lambda line: None)
    dsn, bootstrap = stack.postgres.dsn(), stack.cfg.bootstrap_servers
    run_id = uuid.uuid4().hex[:8]
    work = args.workdir / run_id
    work.mkdir(parents=True, exist_ok=True)
    # Remove an earlier run's rows, then wait until Debezium has published the deletes (a
    # marker row committed after them): the worker starts at the end of the CDC topics.
    individu = f"{TopicNames().cdc_prefix}individu"
    since = end_offsets_now(bootstrap, individu)
    marker = BASE - 1
    with psycopg.connect(dsn) as conn, conn.transaction():
        for statement in CLEAN:
            conn.execute(statement, {"lo": BASE - 1, "hi": BASE + 9_999_999})
        conn.execute(
            "INSERT INTO apogee.individu (cod_ind, lib_nom_pat_ind) VALUES (%s, 'MARK')", (marker,)
        )
    if not wait_for_key(bootstrap, individu, {"cod_ind": marker}, since, 600):
        raise SystemExit("Debezium did not capture the cleanup within 10 min")
    (work / "seed.json").write_text(json.dumps(seed(args.students, args.courses)))
    emu_port, http_port = _free(), _free()
    emulator = children.emulator(
        work / "seed.json",
        emu_port,
        work / "emulator.log",
        "--profile",
        args.profile,
        "--workers",
        str(args.workers),
    )
    emulator.start().wait_http(f"http://127.0.0.1:{emu_port}/_emulator/health", 120)
    app_id = f"bench-{run_id}"
    env = {
        "MOODLE_URL": f"http://127.0.0.1:{emu_port}",
        "MOODLE_TOKEN": TOKEN,
        "MOODLE_MAX_INPUT_VARS": "5000",
        "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RECONCILER_APP_ID": app_id,
        "RECONCILER_START_FROM": "latest",
        "RECONCILER_HTTP_PORT": str(http_port),
        "RECONCILER_DATA_DIR": str(work / "data"),
        "RECONCILER_STORE": args.store,
        "RECONCILER_GRACE_S": str(args.grace_s),
        "RECONCILER_LOG_LEVEL": "warning",
        "RECONCILER_TOPIC_AUDIT": f"{app_id}.audit",
        "RECONCILER_TOPIC_CONTROL": f"{app_id}.control",
        "RECONCILER_TOPIC_DEADLETTER": f"{app_id}.deadletter",
        "RECONCILER_TOPIC_MAPPING": f"{app_id}.mapping",
        "RECONCILER_TOPIC_SHADOW": f"{app_id}.shadow",
    }
    worker = children.worker(env, work / "worker.log")
    try:
        worker.start().wait_http(f"http://127.0.0.1:{http_port}/readyz", 180)
        sampler = Sampler(worker).start()
        expected = args.students * args.elements
        t0 = time.monotonic()
        load(dsn, args.students, args.courses, args.elements)
        committed = time.monotonic() - t0
        print(f"loaded {expected} contract rows in {committed:.1f}s; converging…", flush=True)
        last = -1
        while (done := status(http_port)["applied_total"]) < expected:
            if time.monotonic() - t0 > 3600:
                raise SystemExit(f"not converged after an hour: {done}/{expected}")
            if done // 50_000 != last // 50_000:
                print(f"  {time.monotonic() - t0:6.0f}s applied {done}", flush=True)
            last = done
            time.sleep(1.0)
        converged = time.monotonic() - t0
        rss_load = worker.rss()
        sample = [
            f"{YEAR}-{elp(k)}"
            for k in random.Random(1).sample(
                range(args.courses), min(args.check_courses, args.courses)
            )
        ]
        check = asyncio.run(_check(emu_port, dsn, args.students, sample))
        httpx.post(
            f"http://127.0.0.1:{emu_port}/_emulator/server",
            json={"profile": args.steady_profile, "workers": args.workers},
        ).raise_for_status()
        calls_before = httpx.get(f"http://127.0.0.1:{emu_port}/_emulator/stats").json()["calls"]
        changelogs = [f"{app_id}-{t}-changelog" for t in CHANGELOGS]
        offsets_before = end_offsets(bootstrap, changelogs)
        since_ms = int(time.time() * 1000)
        applied_before = status(http_port)["applied_total"]
        changes = steady(dsn, args.rate, args.seconds, args.students, args.courses, args.elements)
        # every change is one Moodle change: an enrolment, or a suspension after the grace
        deadline = time.monotonic() + 300 + args.grace_s
        while status(http_port)["applied_total"] - applied_before < changes:
            if time.monotonic() > deadline:
                left = changes - (status(http_port)["applied_total"] - applied_before)
                raise SystemExit(f"steady changes not all applied: {left} missing")
            time.sleep(0.5)
        time.sleep(3)  # let the last audit records and changelog writes land
        calls_after = httpx.get(f"http://127.0.0.1:{emu_port}/_emulator/stats").json()["calls"]
        offsets_after = end_offsets(bootstrap, changelogs)
        sizes = bytes_between(bootstrap, offsets_before, offsets_after)
        latencies = audit_latencies(bootstrap, f"{app_id}.audit", since_ms)
        sampler.stop.set()
        result = {
            "bench": "pipeline",
            "machine": f"{platform.machine()} {_cpus()} cpu, {platform.python_version()}",
            "students": args.students,
            "courses": args.courses,
            "contract_rows": expected,
            "profile": args.profile,
            "emulator_workers": args.workers,
            "store": args.store,
            "load_commit_s": round(committed, 1),
            "load_converged_s": round(converged, 1),
            "load_enrolments_per_s": round(expected / converged),
            "moodle_matches_sql_on_sample": check,
            "rss_mb_after_load": round(rss_load / 2**20),
            "rss_mb_peak": round(max([*sampler.samples, rss_load]) / 2**20),
            "steady_profile": args.steady_profile,
            "steady_rate_per_s": args.rate,
            "steady_changes": changes,
            "latency_s": quantiles(latencies),
            "latency_samples": len(latencies),
            "moodle_calls_per_change": round((calls_after - calls_before) / max(changes, 1), 3),
            "changelog_bytes_per_change": round(sum(sizes.values()) / max(changes, 1)),
            "changelog_bytes_by_table": {
                k.split("-")[-2]: round(v / max(changes, 1)) for k, v in sizes.items()
            },
        }
        print(json.dumps(result))
        _table(result)
    finally:
        worker.stop()
        emulator.stop()


async def _check(port: int, dsn: str, students: int, courses: list[str]) -> str:
    settings = MoodleSettings(
        url=f"http://127.0.0.1:{port}",
        token=TOKEN,  # type: ignore[arg-type]
        max_input_vars=5000,
    )
    async with MoodleClient(settings) as client:
        roster = await moodle_enrolments(client, courses)
    wanted = set(courses)
    expected = {p for p in expected_enrolments(dsn, (BASE, BASE + students)) if p[0] in wanted}
    return compare(expected, roster).summary()


def _table(r: dict[str, Any]) -> None:
    lat = r["latency_s"]
    rows = [
        (
            "initial load",
            f"{r['contract_rows']:,} rows, {r['students']:,} students, {r['courses']:,} courses",
        ),
        ("  committed in PostgreSQL", f"{r['load_commit_s']} s"),
        (
            "  converged in Moodle",
            f"{r['load_converged_s']} s ({r['load_enrolments_per_s']:,} enrolments/s)",
        ),
        ("  check", r["moodle_matches_sql_on_sample"]),
        ("worker RSS", f"{r['rss_mb_after_load']} MB after load, {r['rss_mb_peak']} MB peak"),
        (
            f"steady {r['steady_rate_per_s']:g} changes/s",
            f"{r['steady_changes']} changes, emulator {r['steady_profile']}",
        ),
        ("  commit→applied", f"p50 {lat['p50']} s, p95 {lat['p95']} s, p99 {lat['p99']} s"),
        ("  Moodle calls / change", str(r["moodle_calls_per_change"])),
        (
            "  changelog bytes / change",
            f"{r['changelog_bytes_per_change']:,} ({r['changelog_bytes_by_table']})",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _free() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
