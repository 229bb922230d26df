"""Run every benchmark, one after the other, and keep their JSON lines.

    ./dev bench                 # quick scale: 100,000 contract rows, about an hour here
    ./dev bench --scale issue   # the sizes the targets name: 1 M and 3 M rows (hours)
    ./dev bench --only freshness,ceiling

Each benchmark prints one JSON line and a table; the JSON lines of the run are also written to
``.state/bench/results-<UTC time>.jsonl``. Benchmarks print figures: nothing here passes or
fails on a target, and a benchmark that cannot finish says why and the others still run.
The stack is brought up (``reconciler stack up``) by each benchmark if it is not already.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK = {
    "emulator": ["bench_emulator.py", "--repeats", "3", "--warmup", "4", "--measure", "10"],
    "domain": ["bench_domain.py", "--students", "4000"],
    "burst": ["bench_burst.py", "--students", "4000", "--courses", "500"],
    "burst-calibrated": [
        "bench_burst.py",
        *("--students", "4000", "--courses", "500", "--profile", "calibrated"),
        *("--workers", "4", "--no-restart"),
    ],
    "freshness": ["bench_freshness.py", "--rates", "10,100,500", "--seconds", "30"],
    "ceiling": ["bench_ceiling.py", "--students", "4000", "--courses", "500"],
    "cost": ["bench_cost.py", "--students", "4000", "--courses", "2000"],
    "audit": ["bench_audit.py", "--records", "200000"],
    "memory": ["bench_memory.py", "--students", "4000", "--courses", "500"],
}
ISSUE = {
    **QUICK,
    "emulator": ["bench_emulator.py"],
    "domain": ["bench_domain.py"],
    "burst": ["bench_burst.py", "--students", "40000", "--courses", "5000"],
    "burst-calibrated": [
        "bench_burst.py",
        *("--students", "40000", "--courses", "5000", "--profile", "calibrated"),
        *("--workers", "4", "--no-restart"),
    ],
    "memory": ["bench_memory.py", "--students", "40000", "--courses", "5000"],
    "memory-3m": ["bench_memory.py", "--students", "120000", "--courses", "5000"],
    "freshness": ["bench_freshness.py", "--rates", "10,100,500", "--seconds", "120"],
    "ceiling": ["bench_ceiling.py", "--students", "20000", "--courses", "2500"],
    "cost": ["bench_cost.py", "--students", "40000", "--courses", "5000"],
    "audit": ["bench_audit.py"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=["quick", "issue"], default="quick")
    parser.add_argument("--only", default="", help="comma-separated names: " + ", ".join(ISSUE))
    args = parser.parse_args()
    plan = ISSUE if args.scale == "issue" else QUICK
    names = [n for n in args.only.split(",") if n] or list(plan)
    unknown = [n for n in names if n not in plan]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {', '.join(plan)}")
    out = Path(".state/bench") / f"results-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        print(f"== {name}: {' '.join(plan[name])}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(HERE / plan[name][0]), *plan[name][1:]],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("{"):
                with out.open("a") as f:
                    f.write(json.dumps({"name": name, **json.loads(line)}) + "\n")
        if proc.wait() != 0:
            failed.append(name)
        print(f"== {name}: {time.monotonic() - t0:.0f} s, exit {proc.returncode}\n", flush=True)
    print(f"figures in {out}" + (f"; did not finish: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
