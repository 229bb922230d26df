"""Emulator throughput: calls/s and enrolments/s, enrol_manual_enrol_users batches of 1, 100, 500.

Starts ``reconciler moodle-emulator`` in its own process (as benchmarks use it), with a generated
seed of USERS × COURSES, then drives it with concurrent aiohttp POSTs for DURATION seconds per
batch size. New enrolments are sent first; once every pair is enrolled, rows become updates.

    .venv/bin/python bench/bench_emulator.py [--duration 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from streams.moodle.encoding import encode_params

TOKEN = "bench-token-0000000000000000000000"
USERS = 20_000
COURSES = 50


def make_seed(path: Path) -> None:
    seed = {
        "site": {"version": "5.2", "max_input_vars": 5000},
        "users": [{"id": 3, "username": "ws"}]
        + [{"id": 1000 + i, "username": f"u{i}"} for i in range(USERS)],
        "courses": [{"id": 10 + c, "shortname": f"C{c}"} for c in range(COURSES)],
        "tokens": [
            {
                "token": TOKEN,
                "userid": 3,
                "capabilities": [
                    "webservice/rest:use",
                    "enrol/manual:enrol",
                    "moodle/role:assign",
                    "moodle/course:view",
                ],
                "assignable_roles": [5],
            }
        ],
    }
    path.write_text(json.dumps(seed))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(base + "/_emulator/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("emulator did not start")


async def run(
    base: str,
    batch: int,
    duration: float,
    concurrency: int,
    pairs: itertools.cycle[tuple[int, int]],
) -> tuple[float, float, int]:
    url = (
        base
        + "/webservice/rest/server.php?wsfunction=enrol_manual_enrol_users&moodlewsrestformat=json"
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    calls = rows_sent = errors = 0
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal calls, rows_sent, errors
        while time.perf_counter() < deadline:
            rows = [
                {
                    "roleid": 5,
                    "userid": u,
                    "courseid": c,
                    "timestart": 0,
                    "timeend": 0,
                    "suspend": 0,
                }
                for u, c in itertools.islice(pairs, batch)
            ]
            body = urlencode([("wstoken", TOKEN), *encode_params({"enrolments": rows})])
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
            calls += 1
            if text != "null":
                errors += 1
            else:
                rows_sent += batch

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return calls / elapsed, rows_sent / elapsed, errors


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.json"
        make_seed(seed)
        port = free_port()
        reconciler = Path(sys.executable).with_name("reconciler")
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [str(reconciler), "moodle-emulator", "--port", str(port), "--seed", str(seed)],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONOPTIMIZE": "1"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(base)
            pairs = itertools.cycle(
                [(1000 + u, 10 + c) for c in range(COURSES) for u in range(USERS)]
            )
            print(
                f"emulator pid {proc.pid}; {USERS} users × {COURSES} courses; "
                f"{args.concurrency} concurrent clients, {args.duration:.0f} s per size; "
                f"{os.cpu_count()} CPUs (client and emulator share them)"
            )
            print(f"{'batch':>6} {'calls/s':>10} {'enrolments/s':>14} {'errors':>7}")
            for batch in (1, 100, 500):
                calls_s, rows_s, errors = await run(
                    base, batch, args.duration, args.concurrency, pairs
                )
                print(f"{batch:>6} {calls_s:>10.0f} {rows_s:>14.0f} {errors:>7}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
