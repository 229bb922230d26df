"""Cost per change: Moodle calls to converge after random APOGÉE changes, streaming against a
nightly diff, same data, same run.

Not a test: it prints one JSON line, then a table. Run with the stack up::

    .venv/bin/python bench/bench_cost.py [--students 4000 --courses 2000 --changes 100]

A year of ``students × 25`` contract rows is loaded and converged (instant emulator). Then
``--changes`` random one-row changes are committed — half new contract rows (an enrolment),
half deleted ones (a suspension once the grace has passed) — and:

* **streaming**: the Moodle calls the worker made until every change was applied (the
  emulator's counter: reads and writes);
* **nightly diff**: what a run of the Database method costs for the same changes — read every
  course's enrolments from Moodle (done for real here through the web services; counted as one
  call per course, the least any diff needs), diff against APOGÉE, then one write call per
  course and kind of change (the baseline is given the benefit of batching).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import psycopg
from harness import (
    BASE,
    TOKEN,
    YEAR,
    Bench,
    elp,
    emit,
    load,
    machine,
    student_elements,
)

from streams.moodle import MoodleClient, MoodleSettings
from streams.workload.oracle import compare, expected_enrolments, moodle_enrolments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=4000)
    parser.add_argument("--courses", type=int, default=2000)
    parser.add_argument("--elements", type=int, default=25)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    with Bench("cost") as bench:
        bench.clean()
        bench.emulator(args.students, args.courses, "instant", 4)
        app_id = f"bench-{bench.run_id}"
        worker = bench.worker(bench.app_env(app_id, RECONCILER_GRACE_S="2"))
        worker.ready_in(300)
        rows = args.students * args.elements
        load(bench.dsn, args.students, args.courses, args.elements)
        print(f"loaded {rows:,} contract rows; converging…", flush=True)
        bench.wait_applied(worker, rows, 3600)
        applied = worker.applied()
        calls = bench.emu_stats(reset=True)["calls"]
        touched = _changes(bench, args)
        bench.wait_applied(worker, applied + args.changes, 900)
        time.sleep(2)  # a call still in flight when the counter moved is counted too
        streaming = bench.emu_stats()["calls"] - calls
        before = bench.emu_stats()["calls"]
        summary = asyncio.run(_nightly_read(bench, args))
        made = bench.emu_stats()["calls"] - before
        reads = args.courses  # at the least one read per course (the tool above made `made`)
        writes = len(touched)
        nightly = reads + writes
        result = {
            "bench": "cost_per_change",
            "machine": machine(),
            "courses": args.courses,
            "enrolments": rows,
            "changes": args.changes,
            "streaming_calls": streaming,
            "nightly_read_calls": reads,
            "nightly_write_calls": writes,
            "nightly_calls": nightly,
            "read_calls_made_by_the_diff": made,
            "streaming_to_nightly": round(streaming / nightly, 4),
            "moodle_after_streaming": summary,
        }
        emit(
            result,
            [
                ("machine", result["machine"]),
                ("data", f"{rows:,} enrolments in {args.courses:,} courses"),
                ("changes", f"{args.changes} random (half added, half deleted contract rows)"),
                ("streaming", f"{streaming:,} Moodle calls"),
                (
                    "nightly diff",
                    f"{nightly:,} Moodle calls ({reads:,} reads, one per course, "
                    f"{writes:,} batched writes; reading them here took {made:,} calls)",
                ),
                ("streaming / nightly", result["streaming_to_nightly"]),
                ("Moodle against SQL", summary),
            ],
        )


def _changes(bench: Bench, args: argparse.Namespace) -> set[tuple[str, str]]:
    """Commit the changes one transaction each; return the (course, kind) pairs touched."""
    rng = random.Random(11)
    touched: set[tuple[str, str]] = set()
    seen: set[tuple[int, str]] = set()
    with psycopg.connect(bench.dsn, autocommit=True) as conn:
        for n in range(args.changes):
            i = rng.randrange(args.students)
            own = student_elements(i, args.courses, args.elements)
            if n % 2 == 0:
                element = elp(rng.randrange(args.courses))
                while element in own or (i, element) in seen:
                    element = elp(rng.randrange(args.courses))
                conn.execute(
                    "INSERT INTO apogee.ind_contrat_elp (cod_anu, cod_ind, cod_etp, cod_vrs_vet,"
                    " cod_elp, tem_prc_ice) VALUES (%s, %s, 'BENCH', 1, %s, 'N')",
                    (YEAR, BASE + i, element),
                )
                touched.add((element, "enrol"))
            else:
                element = rng.choice(own)
                while (i, element) in seen:
                    i = rng.randrange(args.students)
                    element = rng.choice(student_elements(i, args.courses, args.elements))
                conn.execute(
                    "DELETE FROM apogee.ind_contrat_elp WHERE cod_ind = %s AND cod_elp = %s",
                    (BASE + i, element),
                )
                touched.add((element, "unenrol"))
            seen.add((i, element))
            time.sleep(0.05)
    return touched


async def _nightly_read(bench: Bench, args: argparse.Namespace) -> Any:
    courses = [f"{YEAR}-{elp(k)}" for k in range(args.courses)]
    settings = MoodleSettings(url=bench.emu_url, token=TOKEN, max_input_vars=5000)  # type: ignore[arg-type]
    async with MoodleClient(settings) as client:
        roster = await moodle_enrolments(client, courses)
    expected = expected_enrolments(bench.dsn, (BASE, BASE + args.students))
    return compare(expected, roster).summary()


if __name__ == "__main__":
    main()
