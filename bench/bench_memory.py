"""Memory and restart at a size a streamed load cannot reach in a session: a worker started on
the tables of ``students × elements`` enrolments, restored from its changelogs.

Not a test: it prints one JSON line, then a table. Run with the stack up::

    .venv/bin/python bench/bench_memory.py --students 120000 --courses 5000   # 3 M rows

The year is loaded into PostgreSQL and captured by Debezium as in ``bench_burst.py``; the
worker's tables for it are then computed by the worker's own handlers from those CDC
records and written to the changelog topics (``bench/seeded.py``), instead of streaming
them through a worker (hours at 3 M rows here). A new worker then starts on an empty data
directory, at the end of the CDC topics. What it measures (issue 12, "memory and restart"):

* restart-to-ready from changelogs only (the tables restored into RocksDB), then with the
  local state it restored;
* worker resident memory: when ready, once it has planned every course (and made no Moodle
  call: the ledger matches the desired state), after ``--changes`` one-row changes, after the
  restart on local state, and the peak (sampled every 2 s);
* changelog bytes written per source change at this size.

``bench_burst.py`` measures the same after a streamed load (and its peak while streaming).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from harness import (
    BASE,
    YEAR,
    Bench,
    Sampler,
    Worker,
    cdc_topics,
    changelog_bytes,
    emit,
    end_offsets,
    load,
    machine,
    quiet,
    records,
)
from seeded import seed_state

from streams.kafka.admin import ensure_topics
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.pipeline import topics
from streams.pipeline.settings import WorkerSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=4000)
    parser.add_argument("--courses", type=int, default=500)
    parser.add_argument("--elements", type=int, default=25)
    parser.add_argument("--changes", type=int, default=200, help="for changelog bytes/change")
    args = parser.parse_args()
    with Bench("memory") as bench:
        bench.clean()
        bench.emulator(args.students, args.courses, "instant", 4)
        app_id = f"bench-{bench.run_id}"
        env = bench.app_env(
            app_id,
            RECONCILER_STORE="rocksdb",
            RECONCILER_GRACE_S="2",
            # Moodle was not given the enrolments: no drift check reads it
            RECONCILER_DRIFT_CHECK_S="0",
        )
        rows = args.students * args.elements
        cdc = cdc_topics()
        # the cleanup of an earlier run's rows may still be arriving (millions of deletes):
        # only what comes after it is this load
        before = quiet(cdc, still_s=10, timeout_s=1800)
        t0 = time.monotonic()
        load(bench.dsn, args.students, args.courses, args.elements)
        after = _captured(cdc, before, rows + 2 * args.students, 1800)
        captured_s = time.monotonic() - t0
        print(f"{rows:,} contract rows committed and captured in {captured_s:.0f} s", flush=True)
        os.environ.update(env)
        settings, kafka = WorkerSettings(), KafkaSettings()
        ensure_topics(
            kafka,
            topics.specs(
                app_id,
                TopicNames(),
                settings.partitions,
                settings.history_days,
                settings.course_events_days,
            ),
        )
        seeded = seed_state(
            records(before, after, timeout_s=3600),
            settings,
            kafka,
            _moodle_user_id,
            _moodle_course_id,
        )
        print(f"tables computed and written: {seeded}", flush=True)
        if seeded.desired < rows or seeded.ledger < rows or seeded.rejected:
            raise SystemExit(f"the computed state is short of {rows:,} enrolments: {seeded}")
        worker = bench.worker(env)
        sampler = Sampler(worker.child).start()
        bench.emu_stats(reset=True)
        from_changelogs_s = worker.ready_in(3600)
        rss: dict[str, int] = {"ready_from_changelogs": _mb(worker)}
        settled_s = _settled(worker, 3600)
        rss["all_courses_planned"] = _mb(worker)
        emu = bench.emu_stats()
        logs = changelog_bytes(
            bench, worker, app_id, args.students, args.courses, args.elements, args.changes
        )
        rss["after_changes"] = _mb(worker)
        worker.child.stop()
        local_s = worker.ready_in(600)
        rss["ready_from_local_state"] = _mb(worker)
        sampler.stop.set()
        result: dict[str, Any] = {
            "bench": "memory",
            "machine": machine(),
            "students": args.students,
            "courses": args.courses,
            "contract_rows": rows,
            "state": {
                "students": seeded.students,
                "desired": seeded.desired,
                "ledger": seeded.ledger,
                "courses": seeded.courses,
                "changelog_records": seeded.records_produced,
                "computed_s": seeded.seconds_computing,
                "produced_s": seeded.seconds_producing,
            },
            "ready_from_changelogs_s": round(from_changelogs_s, 1),
            "all_courses_planned_s": round(settled_s, 1),
            "moodle_calls_after_ready": emu["calls"],
            "moodle_rows_written_after_ready": emu["rows_applied"],
            "ready_from_local_state_s": round(local_s, 1),
            "rss_mb": rss,
            "rss_mb_peak": sampler.peak_mb(),
            **logs,
        }
        emit(result, _rows(result))


def _moodle_user_id(user: str) -> int:
    """The benchmark seed's user ids (``harness.seed``): 100 + i for student i."""
    return 100 + int(user) - (BASE + 10_000_000)


def _moodle_course_id(course: str) -> int:
    """The benchmark seed's course ids: 10 + k for ``YEAR-BNkkkkk``."""
    return 10 + int(course.removeprefix(f"{YEAR}-BN"))


def _captured(topics_: list[str], before: Any, count: int, timeout_s: float) -> Any:
    """End offsets once Debezium has published ``count`` records past ``before``."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = end_offsets(topics_)
        got = sum(now[tp] - before.get(tp, 0) for tp in now)
        if got >= count:
            return now
        if time.monotonic() > deadline:
            raise SystemExit(f"Debezium published {got:,} of {count:,} records in {timeout_s} s")
        time.sleep(1.0)


def _settled(worker: Worker, timeout_s: float) -> float:
    """Seconds until the applier has no course pending or in flight (the sweep at ready
    plans every course)."""
    t0 = time.monotonic()
    while True:
        status = worker.status()
        if not status["pending_courses"] and not status["in_flight_courses"]:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"courses still pending after {timeout_s:.0f} s: {status}")
        time.sleep(1.0)


def _mb(worker: Worker) -> int:
    return round(worker.child.rss() / 2**20)


def _rows(r: dict[str, Any]) -> list[tuple[str, object]]:
    s, rss = r["state"], r["rss_mb"]
    return [
        (
            "state",
            f"{s['desired']:,} desired enrolments, {s['ledger']:,} ledger entries, "
            f"{s['students']:,} students, {s['courses']:,} courses "
            f"({s['changelog_records']:,} changelog records; computed in {s['computed_s']} s, "
            f"written in {s['produced_s']} s)",
        ),
        ("ready from changelogs", f"{r['ready_from_changelogs_s']} s"),
        (
            "every course planned",
            f"{r['all_courses_planned_s']} s after ready; Moodle calls "
            f"{r['moodle_calls_after_ready']}, rows written {r['moodle_rows_written_after_ready']}",
        ),
        ("ready from local state", f"{r['ready_from_local_state_s']} s"),
        (
            "worker RSS (MB)",
            f"ready {rss['ready_from_changelogs']}, planned {rss['all_courses_planned']}, "
            f"after changes {rss['after_changes']}, after local restart "
            f"{rss['ready_from_local_state']}, peak {r['rss_mb_peak']}",
        ),
        (
            "changelog bytes / change",
            f"{r['changelog_bytes_per_change']:,} {r['changelog_bytes_by_table']}",
        ),
    ]


if __name__ == "__main__":
    main()
