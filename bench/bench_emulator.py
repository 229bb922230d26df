"""Emulator and client under the calibrated cost profile (issue 8 "Done when").

1. Per-call latency, one PHP worker, one call at a time (as the §11 probe measured a real
   Moodle 4.4 site): enrol 1 and 100 new rows, the same rows again (unchanged), unenrol 1 and
   100 rows; median of ``--repeats`` calls against the §11 medians (target: within 15 %).
2. The client's sustained enrolments/s at 1, 2, 4 and 8 PHP workers: USERS × COURSES new
   enrolments handed to one ``enrol_manual_enrol_users`` call (one lane per course, batches of
   100), measured after ``--warmup`` seconds for ``--measure`` seconds, as a share of the
   profile's capacity (workers × 100 rows / 440.7 ms; target ≥ 0.9), with the client's
   adaptive limit and the calls in flight at the site (target: settling at the workers), and
   the mean answer time against an idle server's (target: within 1.5×).

Each part starts ``reconciler moodle-emulator --profile calibrated --workers N`` in its own
process. Client and emulator share this machine's CPUs.

    .venv/bin/python bench/bench_emulator.py [--repeats 15] [--warmup 8] [--measure 20]
    .venv/bin/python bench/bench_emulator.py --raw   # also: instant-profile raw throughput
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx

from streams.moodle import Enrolment, MoodleClient, MoodleSettings
from streams.moodle.encoding import encode_params

TOKEN = "be0c4b1d2e3f405162738495a6b7c8d9"  # 32 letters and digits, as Moodle makes them
USERS = 3000
COURSES = 20
REST = "/webservice/rest/server.php"
# §11 medians (ms): (label, function, rows, new?)
FIGURES = [
    ("enrol 1 new", "enrol_manual_enrol_users", 1, True, 32.9),
    ("enrol 1 again", "enrol_manual_enrol_users", 1, False, 28.0),
    ("unenrol 1", "enrol_manual_unenrol_users", 1, True, 31.1),
    ("enrol 100 new", "enrol_manual_enrol_users", 100, True, 440.7),
    ("enrol 100 again", "enrol_manual_enrol_users", 100, False, 214.4),
    ("unenrol 100", "enrol_manual_unenrol_users", 100, True, 471.0),
]
IDLE_100_NEW_S = 0.4407  # the profile's service time for 100 new rows (= §11 median)


def make_seed(path: Path) -> None:
    seed = {
        "site": {"version": "4.4", "max_input_vars": 5000},
        "users": [
            {
                "id": 3,
                "username": "ws",
                "capabilities": [
                    "webservice/rest:use",
                    "enrol/manual:enrol",
                    "enrol/manual:unenrol",
                    "moodle/role:assign",
                    "moodle/course:view",
                ],
                "assignable_roles": [5],
            }
        ]
        + [{"id": 1000 + i, "username": f"u{i}"} for i in range(USERS)],
        "courses": [{"id": 10 + c, "shortname": f"C{c}"} for c in range(COURSES)],
        "tokens": [{"token": TOKEN, "userid": 3}],
    }
    path.write_text(json.dumps(seed))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def emulator(seed: Path, profile: str, workers: int | None) -> AsyncIterator[str]:
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("reconciler")), "moodle-emulator",
        "--port", str(port), "--seed", str(seed), "--profile", profile, "--cost-seed", "11",
    ]  # fmt: skip
    if workers:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per part, before any load
        command, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONOPTIMIZE": "1"}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if (await http.get(base + "/_emulator/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("emulator did not start")
                await asyncio.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- 1. per-call latency ------------------------------------------------------------------------


def _rows(function: str, users: list[int], course: int) -> list[dict[str, int]]:
    if function == "enrol_manual_enrol_users":
        return [{"roleid": 5, "userid": u, "courseid": course} for u in users]
    return [{"userid": u, "courseid": course} for u in users]


async def _timed(
    session: aiohttp.ClientSession, base: str, function: str, rows: list[dict[str, int]]
) -> float:
    body = urlencode([("wstoken", TOKEN), *encode_params({"enrolments": rows})])
    url = f"{base}{REST}?wsfunction={function}&moodlewsrestformat=json"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        text = await response.text()
    elapsed = time.perf_counter() - started
    if text != "null":
        raise RuntimeError(f"{function}: {text[:200]}")
    return elapsed * 1000


async def per_call_latency(seed: Path, repeats: int) -> list[tuple[str, float, float]]:
    """For each repeat and size: enrol new rows, the same again, then unenrol them (aiohttp:
    a light client, so that what is timed is the site, as the §11 probe timed a real one)."""
    samples: dict[str, list[float]] = {label: [] for label, *_ in FIGURES}
    users = itertools.count(1000)
    enrol, unenrol = "enrol_manual_enrol_users", "enrol_manual_unenrol_users"
    async with emulator(seed, "calibrated", 1) as base, aiohttp.ClientSession() as session:
        for course, rows_n in itertools.product(range(repeats), (1, 100)):
            batch = [next(users) for _ in range(rows_n)]
            courseid = 10 + course % COURSES
            rows = _rows(enrol, batch, courseid)
            samples[f"enrol {rows_n} new"].append(await _timed(session, base, enrol, rows))
            samples[f"enrol {rows_n} again"].append(await _timed(session, base, enrol, rows))
            rows = _rows(unenrol, batch, courseid)
            samples[f"unenrol {rows_n}"].append(await _timed(session, base, unenrol, rows))
    return [(label, statistics.median(samples[label]), ms) for label, *_, ms in FIGURES]


# -- 2. sustained throughput --------------------------------------------------------------------


def workload() -> list[Enrolment]:
    """USERS × COURSES new enrolments, course after course (one lane each in the client)."""
    return [Enrolment(1000 + u, 10 + c, 5) for c in range(COURSES) for u in range(USERS)]


def _mean(values: Iterator[float] | list[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


async def sustained(seed: Path, workers: int, warmup: float, measure: float) -> dict[str, float]:
    async with (
        emulator(seed, "calibrated", workers) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        settings = MoodleSettings.model_validate(
            {"url": base, "token": TOKEN, "max_concurrency": 16, "rate_per_s": 1000,
             "rate_burst": 100, "max_input_vars": 5000, "max_batch_rows": 100, "timeout_s": 60}
        )  # fmt: skip
        async with MoodleClient(settings) as moodle:
            task = asyncio.create_task(moodle.enrol_manual_enrol_users(workload()))
            await asyncio.sleep(warmup)
            await http.post("/_emulator/stats")  # reset: measure the steady part only
            limits: list[float] = []
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < measure:
                if task.done():
                    raise RuntimeError("the workload ran out before the measure ended")
                limits.append(moodle.concurrency().limit)
                await asyncio.sleep(0.1)
            stats = (await http.get("/_emulator/stats")).json()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    capacity = workers * 100 / IDLE_100_NEW_S
    rate = stats["rows_applied"] / elapsed
    return {
        "workers": workers,
        "enrolments_s": rate,
        "capacity_s": capacity,
        "share": rate / capacity,
        "client_limit": _mean(limits),
        "site_in_flight": stats["mean_in_flight"],
        "answer_s": stats["mean_answer_s"],
        "latency_ratio": stats["mean_answer_s"] / IDLE_100_NEW_S,
        "utilisation": stats["busy_s"] / (workers * stats["elapsed_s"]),
    }


# -- raw (instant profile) ----------------------------------------------------------------------


async def raw_throughput(seed: Path, duration: float) -> list[tuple[int, float, float]]:
    """The emulator's own speed (instant profile), driven with aiohttp: lighter than httpx, so
    the client is not what is measured."""
    results = []
    url = REST + "?wsfunction=enrol_manual_enrol_users&moodlewsrestformat=json"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with emulator(seed, "instant", None) as base:
        pairs = itertools.cycle([(1000 + u, 10 + c) for c in range(COURSES) for u in range(USERS)])

        async def worker(session: aiohttp.ClientSession, batch: int, deadline: float) -> int:
            calls = 0
            while time.perf_counter() < deadline:
                rows = [
                    {"roleid": 5, "userid": u, "courseid": c}
                    for u, c in itertools.islice(pairs, batch)
                ]
                body = urlencode([("wstoken", TOKEN), *encode_params({"enrolments": rows})])
                async with session.post(base + url, data=body, headers=headers) as response:
                    if await response.text() != "null":
                        raise RuntimeError("raw call failed")
                calls += 1
            return calls

        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(connector=connector) as session:
            for batch in (1, 100, 500):
                started = time.perf_counter()
                counts = await asyncio.gather(
                    *(worker(session, batch, started + duration) for _ in range(8))
                )
                elapsed = time.perf_counter() - started
                results.append((batch, sum(counts) / elapsed, sum(counts) * batch / elapsed))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--measure", type=float, default=20.0)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--raw", action="store_true", help="also the instant profile's raw speed")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} CPUs, load average {load:.2f} at start (client and emulator share them)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.json"
        make_seed(seed)
        print(f"\n1. per-call latency, calibrated profile, 1 worker, median of {args.repeats}")
        print(f"{'call':<18}{'emulator ms':>12}{'§11 ms':>9}{'diff':>8}")
        for label, got, want in await per_call_latency(seed, args.repeats):
            print(f"{label:<18}{got:>12.1f}{want:>9.1f}{(got - want) / want:>+8.1%}")
        print(f"\n2. client sustained, {USERS} users × {COURSES} courses, "
              f"{args.warmup:.0f} s warm-up, {args.measure:.0f} s measured")  # fmt: skip
        print(f"{'workers':>7}{'enrol/s':>9}{'capacity':>9}{'share':>7}{'limit':>7}"
              f"{'in flight':>10}{'answer s':>9}{'× idle':>7}{'busy':>6}")  # fmt: skip
        for workers in args.workers:  # none given: part 2 skipped
            r = await sustained(seed, workers, args.warmup, args.measure)
            print(f"{workers:>7}{r['enrolments_s']:>9.0f}{r['capacity_s']:>9.0f}{r['share']:>7.2f}"
                  f"{r['client_limit']:>7.2f}{r['site_in_flight']:>10.2f}{r['answer_s']:>9.3f}"
                  f"{r['latency_ratio']:>7.2f}{r['utilisation']:>6.2f}")  # fmt: skip
        if args.raw:
            print("\n3. raw emulator speed, instant profile, 8 concurrent clients, 5 s per size")
            print(f"{'batch':>6}{'calls/s':>10}{'enrolments/s':>14}")
            for batch, calls_s, rows_s in await raw_throughput(seed, 5.0):
                print(f"{batch:>6}{calls_s:>10.0f}{rows_s:>14.0f}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    asyncio.run(main())
