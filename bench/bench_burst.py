"""Burst, memory and restart: an initial load of ``students × elements`` contract rows to full
convergence, on the real stack.

Not a test: it prints one JSON line, then a table. Run with the stack up::

    .venv/bin/python bench/bench_burst.py --students 40000 --courses 5000   # 1 M rows
        [--profile instant|calibrated --workers 4] [--store rocksdb|memory] [--no-restart]

What it measures (issue 12, "burst" and "memory and restart"):

* wall time from the first commit until the worker has applied every enrolment, and events
  per second per stage: Debezium (CDC records, from the first commit to the last record's
  timestamp), the student view (membership facts written to the course-events topic), the
  applier (enrolments applied); Moodle calls made (the emulator's counter); Moodle read back
  through its web services against SQL on a sample of courses;
* with ``--profile calibrated --workers N``: enrolments per second as a share of that
  profile's capacity (N × 100 rows / 440.7 ms), and whether the site ever queued a call
  (``max_queued``: calls that waited for a free PHP worker);
* worker resident memory (peak and after the load) with the RocksDB tables;
* changelog bytes written per source change, over ``--changes`` one-row changes after the load;
* restart-to-ready: the worker stopped and started again on its local state, then on an empty
  data directory (tables restored from the changelogs only).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from harness import (
    BASE,
    IDLE_100_NEW_S,
    TOKEN,
    YEAR,
    Bench,
    Sampler,
    cdc_topics,
    changelog_bytes,
    course_events_topic,
    elp,
    emit,
    end_offsets,
    load,
    machine,
    span,
    wipe,
)

from streams.moodle import MoodleClient, MoodleSettings
from streams.workload.oracle import compare, expected_enrolments, moodle_enrolments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=4000)
    parser.add_argument("--courses", type=int, default=500)
    parser.add_argument("--elements", type=int, default=25)
    parser.add_argument("--profile", default="instant", choices=["instant", "calibrated"])
    parser.add_argument("--workers", type=int, default=4, help="PHP workers of the emulator")
    parser.add_argument("--store", default="rocksdb", choices=["rocksdb", "memory"])
    parser.add_argument("--changes", type=int, default=200, help="for changelog bytes/change")
    parser.add_argument("--check-courses", type=int, default=50)
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--timeout-s", type=float, default=3 * 3600)
    args = parser.parse_args()
    with Bench("burst") as bench:
        bench.clean()
        bench.emulator(args.students, args.courses, args.profile, args.workers)
        app_id = f"bench-{bench.run_id}"
        worker = bench.worker(
            bench.app_env(app_id, RECONCILER_STORE=args.store, RECONCILER_GRACE_S="2")
        )
        worker.ready_in(300)
        sampler = Sampler(worker.child).start()
        topics = [*cdc_topics(), course_events_topic(app_id), f"{app_id}.audit"]
        before = end_offsets(topics)
        bench.emu_stats(reset=True)
        expected = args.students * args.elements
        t0_ms = int(time.time() * 1000)
        t0 = time.monotonic()
        load(bench.dsn, args.students, args.courses, args.elements)
        committed = time.monotonic() - t0
        print(f"committed {expected:,} contract rows in {committed:.1f} s; converging…")
        bench.wait_applied(worker, expected, args.timeout_s, every=max(expected // 10, 1000))
        converged = time.monotonic() - t0
        emu = bench.emu_stats()
        rss_load = worker.child.rss()
        after = end_offsets(topics)
        stages = _stages(before, after, app_id, t0_ms)
        check = asyncio.run(_check(bench, args))
        # changelog bytes per source change at this size (instant Moodle: no queue)
        if args.profile != "instant":
            bench.emu_profile("instant", args.workers)
        logs = changelog_bytes(
            bench, worker, app_id, args.students, args.courses, args.elements, args.changes
        )
        sampler.stop.set()
        restart: dict[str, Any] = {}
        if not args.no_restart:
            worker.child.stop()
            restart["local_state_s"] = round(worker.ready_in(600), 1)
            restart["rss_mb_after_local_restart"] = round(worker.child.rss() / 2**20)
            worker.child.stop()
            wipe(worker.data_dir)
            restart["from_changelogs_s"] = round(worker.ready_in(1800), 1)
            restart["rss_mb_after_changelog_restore"] = round(worker.child.rss() / 2**20)
        rate = expected / converged
        capacity = args.workers * 100 / IDLE_100_NEW_S
        result = {
            "bench": "burst",
            "machine": machine(),
            "students": args.students,
            "courses": args.courses,
            "contract_rows": expected,
            "profile": args.profile,
            "emulator_workers": args.workers,
            "store": args.store,
            "commit_s": round(committed, 1),
            "converged_s": round(converged, 1),
            "enrolments_per_s": round(rate),
            "stages_per_s": stages,
            "moodle_calls": emu["calls"],
            "rows_per_call": round(emu["rows_applied"] / max(emu["calls"], 1), 1),
            "share_of_capacity": round(rate / capacity, 3) if args.profile != "instant" else None,
            "site_max_queued": emu["max_queued"],
            "moodle_matches_sql_on_sample": check,
            "rss_mb_after_load": round(rss_load / 2**20),
            "rss_mb_peak": sampler.peak_mb(),
            **logs,
            "restart": restart,
        }
        emit(result, _rows(result))


def _stages(before: Any, after: Any, app_id: str, t0_ms: int) -> dict[str, float]:
    """Records per second each stage wrote, from the first commit to its last record."""

    def of(prefix: str) -> dict[str, Any]:
        return {tp: o for tp, o in after.items() if tp[0].startswith(prefix)}

    cdc = span(before, {tp: o for tp, o in after.items() if tp[0] in cdc_topics()})
    facts = span(before, of(course_events_topic(app_id)))
    audit = span(before, of(f"{app_id}.audit"))
    return {
        "debezium_records": cdc.count,
        "debezium": round(cdc.rate_from(t0_ms)),
        "debezium_done_s": round((cdc.last_ms - t0_ms) / 1000, 1),
        "student_view_records": facts.count,
        "student_view": round(facts.rate_from(t0_ms)),
        "student_view_done_s": round((facts.last_ms - t0_ms) / 1000, 1),
        "applier_audit_records": audit.count,
        "applier": round(audit.rate_from(t0_ms)),
        "applier_done_s": round((audit.last_ms - t0_ms) / 1000, 1),
    }


async def _check(bench: Bench, args: argparse.Namespace) -> str:
    sample = [
        f"{YEAR}-{elp(k)}"
        for k in random.Random(1).sample(range(args.courses), min(args.check_courses, args.courses))
    ]
    settings = MoodleSettings(url=bench.emu_url, token=TOKEN, max_input_vars=5000)  # type: ignore[arg-type]
    async with MoodleClient(settings) as client:
        roster = await moodle_enrolments(client, sample)
    wanted = set(sample)
    expected = {
        p for p in expected_enrolments(bench.dsn, (BASE, BASE + args.students)) if p[0] in wanted
    }
    return compare(expected, roster).summary()


def _rows(r: dict[str, Any]) -> list[tuple[str, object]]:
    s, restart = r["stages_per_s"], r["restart"]
    rows: list[tuple[str, object]] = [
        (
            "initial load",
            f"{r['contract_rows']:,} rows, {r['students']:,} students, {r['courses']:,} courses, "
            f"emulator {r['profile']} ({r['emulator_workers']} workers), {r['store']}",
        ),
        ("  committed in PostgreSQL", f"{r['commit_s']} s"),
        ("  converged in Moodle", f"{r['converged_s']} s ({r['enrolments_per_s']:,} enrolments/s)"),
        (
            "  Debezium",
            f"{s['debezium_records']:,} records, {s['debezium']:,}/s, "
            f"last at {s['debezium_done_s']} s",
        ),
        (
            "  student view → facts",
            f"{s['student_view_records']:,} records, {s['student_view']:,}/s, "
            f"last at {s['student_view_done_s']} s",
        ),
        (
            "  applier",
            f"{s['applier_audit_records']:,} audit records, {s['applier']:,}/s, "
            f"last at {s['applier_done_s']} s",
        ),
        ("  Moodle calls", f"{r['moodle_calls']:,} ({r['rows_per_call']} rows per call)"),
    ]
    if r["share_of_capacity"] is not None:
        rows.append(
            (
                "  share of site capacity",
                f"{r['share_of_capacity']} (site queued at most {r['site_max_queued']} calls)",
            )
        )
    rows += [
        ("  check", r["moodle_matches_sql_on_sample"]),
        ("worker RSS", f"{r['rss_mb_after_load']} MB after load, {r['rss_mb_peak']} MB peak"),
        (
            "changelog bytes / change",
            f"{r['changelog_bytes_per_change']:,} {r['changelog_bytes_by_table']}",
        ),
    ]
    if restart:
        rows += [
            (
                "restart to ready",
                f"{restart['local_state_s']} s with local state "
                f"({restart['rss_mb_after_local_restart']} MB), "
                f"{restart['from_changelogs_s']} s from changelogs "
                f"({restart['rss_mb_after_changelog_restore']} MB)",
            )
        ]
    return rows


if __name__ == "__main__":
    main()
