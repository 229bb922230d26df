"""Freshness: commit-to-applied latency at steady rates of APOGÉE changes, by stage.

Not a test: it prints one JSON line per rate, then a table. Run with the stack up::

    .venv/bin/python bench/bench_freshness.py [--rates 10,100,500 --seconds 30]
        [--students 2000 --courses 500] [--profile calibrated --workers 4]

A year of ``students × 25`` contract rows is loaded first (instant emulator), then the
emulator switches to ``--profile`` (by default ``calibrated``: each call costs what it costs a
real site, moodle-ws.md §11) and, for each rate, one-row transactions are committed at that
rate for ``--seconds``: half add a student to a course (one enrolment), half delete one of the
loaded contract rows (one suspension once the 2 s grace has passed; the mass-removal guard is
opened wide: it is tested elsewhere).

Latency is measured for the additions, per change, from the APOGÉE commit (the row's commit
time in its lineage) to the audit record of the applied enrolment, and split by stage:

* **Debezium**: commit → the CDC record's Kafka timestamp (WAL decoding, Connect's producer);
* **student view**: CDC record → the membership-fact record on the course-events topic (the
  broker hop, the worker's fetch, decoding, folding, routing, its producer's linger);
* **course view + plan + Moodle**: fact record → applied (the course agent, the applier's
  cycle, the web-service call); the mean Moodle call time (the worker's own histogram) is
  shown beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from harness import (
    Bench,
    Changes,
    cdc_topics,
    course_events_topic,
    emit,
    end_offsets,
    load,
    machine,
    quantiles,
    records,
)

from streams.pipeline.codec import decode_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="10,100,500")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--courses", type=int, default=500)
    parser.add_argument("--elements", type=int, default=25)
    parser.add_argument("--profile", default="calibrated", choices=["instant", "calibrated"])
    parser.add_argument("--workers", type=int, default=4, help="PHP workers of the emulator")
    args = parser.parse_args()
    with Bench("freshness") as bench:
        bench.clean()
        bench.emulator(args.students, args.courses, "instant", args.workers)
        app_id = f"bench-{bench.run_id}"
        worker = bench.worker(bench.app_env(app_id, RECONCILER_GRACE_S="2"))
        worker.ready_in(300)
        rows = args.students * args.elements
        load(bench.dsn, args.students, args.courses, args.elements)
        print(f"loaded {rows:,} contract rows; converging…", flush=True)
        bench.wait_applied(worker, rows, 3600)
        bench.emu_profile(args.profile, args.workers)
        changes = Changes(bench.dsn, args.students, args.courses, args.elements)
        table: list[tuple[str, object]] = [("machine", machine())]
        for rate in (float(r) for r in args.rates.split(",")):
            result = _at(bench, worker, app_id, changes, rate, args)
            print(json.dumps(result), flush=True)
            table += _rows(result)
        emit({"bench": "freshness", "rates": args.rates, "profile": args.profile}, table)


def _at(
    bench: Bench, worker: Any, app_id: str, changes: Changes, rate: float, args: Any
) -> dict[str, Any]:
    topics = [*cdc_topics(), course_events_topic(app_id), f"{app_id}.audit"]
    before = end_offsets(topics)
    applied = worker.applied()
    calls = bench.emu_stats()["calls"]
    call_sum = worker.metric("reconciler_moodle_call_duration_seconds_sum")
    call_count = worker.metric("reconciler_moodle_call_duration_seconds_count")
    made, took = changes.run(rate, int(rate * args.seconds))
    bench.wait_applied(worker, applied + made, 900)
    time.sleep(2)  # the last audit records are buffered (producer linger)
    after = end_offsets(topics)
    per_stage = _stage_latencies(before, after, app_id)
    mean_call = (worker.metric("reconciler_moodle_call_duration_seconds_sum") - call_sum) / max(
        worker.metric("reconciler_moodle_call_duration_seconds_count") - call_count, 1
    )
    total = per_stage["total"]
    return {
        "bench": "freshness",
        "machine": machine(),
        "rate_per_s": rate,
        "achieved_rate_per_s": round(made / took, 1),
        "changes": made,
        "profile": args.profile,
        "emulator_workers": args.workers,
        "latency_s": quantiles(total),
        "samples": len(total),
        "stages_p50_s": {
            stage: round(statistics.median(values), 3) if values else None
            for stage, values in per_stage.items()
            if stage != "total"
        },
        "stages_p99_s": {
            stage: quantiles(values)["p99"]
            for stage, values in per_stage.items()
            if stage != "total"
        },
        "mean_moodle_call_s": round(mean_call, 3),
        "moodle_calls_per_change": round((bench.emu_stats()["calls"] - calls) / max(made, 1), 3),
    }


def _stage_latencies(before: Any, after: Any, app_id: str) -> dict[str, list[float]]:
    """Per applied addition: commit → CDC record → fact record → audit record."""
    cdc_ts: dict[tuple[str, int, int], int] = {}
    fact_ts: dict[tuple[str, str], int] = {}
    audits: list[dict[str, Any]] = []
    facts_topic, audit_topic = course_events_topic(app_id), f"{app_id}.audit"
    for msg in records(before, after):
        topic = msg.topic()
        ts = msg.timestamp()[1]
        if topic == audit_topic:
            audits.append(json.loads(msg.value() or b"{}"))
        elif topic == facts_topic:
            event = decode_event(msg.value() or b"")
            for change in getattr(event, "changes", ()):
                if change.asserted:
                    fact_ts.setdefault((event.course, change.fact.user), ts)
        else:
            cdc_ts[(topic, msg.partition(), msg.offset())] = ts
    out: dict[str, list[float]] = {
        "debezium": [],
        "student_view": [],
        "course_view_plan_moodle": [],
        "total": [],
    }
    for record in audits:
        command = record["command"]
        if record["outcome"] != "applied" or command["kind"] != "enrol":
            continue
        refs = [ref for fact in command["facts"] for ref in _refs(fact)]
        refs = [r for r in refs if r.get("committed_ms") and r.get("offset") is not None]
        if not refs:
            continue
        cause = max(refs, key=lambda r: r["committed_ms"])
        committed = cause["committed_ms"]
        cdc = cdc_ts.get((cause["topic"], cause["partition"], cause["offset"]))
        fact = fact_ts.get((command["course"], command["user"]))
        applied = _ms(record["at"])
        if cdc is None or fact is None:
            continue
        out["debezium"].append((cdc - committed) / 1000)
        out["student_view"].append((fact - cdc) / 1000)
        out["course_view_plan_moodle"].append((applied - fact) / 1000)
        out["total"].append((applied - committed) / 1000)
    return out


def _refs(fact: Any) -> list[dict[str, Any]]:
    """The SourceRefs of a fact, whatever their nesting in its JSON form."""
    found: list[dict[str, Any]] = []
    if isinstance(fact, dict):
        if "committed_ms" in fact and "log" in fact:
            found.append(fact)
        for value in fact.values():
            found += _refs(value)
    elif isinstance(fact, list):
        for value in fact:
            found += _refs(value)
    return found


def _ms(at: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(at).timestamp() * 1000)


def _rows(r: dict[str, Any]) -> list[tuple[str, object]]:
    lat, p50, p99 = r["latency_s"], r["stages_p50_s"], r["stages_p99_s"]
    return [
        (
            f"{r['rate_per_s']:g} changes/s",
            f"{r['changes']} changes ({r['achieved_rate_per_s']}/s achieved), emulator "
            f"{r['profile']} ({r['emulator_workers']} workers), {r['samples']} additions timed",
        ),
        ("  commit → applied", f"p50 {lat['p50']} s, p95 {lat['p95']} s, p99 {lat['p99']} s"),
        ("  Debezium", f"p50 {p50['debezium']} s, p99 {p99['debezium']} s"),
        ("  student view", f"p50 {p50['student_view']} s, p99 {p99['student_view']} s"),
        (
            "  course view + plan + Moodle",
            f"p50 {p50['course_view_plan_moodle']} s, p99 {p99['course_view_plan_moodle']} s "
            f"(mean Moodle call {r['mean_moodle_call_s']} s)",
        ),
        ("  Moodle calls / change", r["moodle_calls_per_change"]),
    ]


if __name__ == "__main__":
    main()
