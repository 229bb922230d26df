"""``reconciler demo`` at a small scale runs to its verdict on the real stack: Moodle matches.

The stack comes from the session ``services`` fixture (started by the test run when it is not
already up); the demo's own ``stack up`` then finds it healthy. The demo starts and stops its
emulator and worker itself; the test checks its exit code, its verdict line, every event's
outcome, and that nothing it started is left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import Services, backend_name

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _processes_of(app_id: str, run_dir: str) -> list[int]:
    """Processes still running that the demo run started (its worker, its emulator)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if run_dir.encode() in cmdline or f"RECONCILER_APP_ID={app_id}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_demo_small_scale_matches(services: Services) -> None:
    if backend_name() == "containers":
        pytest.skip("the demo runs the process stack (reconciler stack up), not containers")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "demo", "--students", "60", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        stdout, output = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the demo stops its emulator and worker, then exits
        stdout, output = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{output[-4000:]}"
    assert "Moodle matches APOGÉE: " in output
    assert "0 missing, 0 extra, 0 wrongly suspended" in output
    assert "differs from SQL" not in output  # the demo's model of the rows agrees with SQL
    summary = json.loads(stdout)
    assert summary["matches"] is True and summary["error"] is None
    assert summary["expected"] == summary["active"] > 1000
    events = {e["name"]: e for e in summary["events"]}
    assert set(events) == {"contract_resaved", "option_swapped", "element_dropped",
                           "enrolment_cancelled", "late_student_number", "user_created",
                           "course_created"}  # fmt: skip
    assert all(e["ok"] for e in events.values()), events
    removed = events["enrolment_cancelled"]["seconds"]["removed"]
    assert removed >= summary["grace_s"]  # suspensions wait out the grace window
    assert "stack down" in output
    assert _processes_of(summary["app_id"], summary["logs"]) == []  # emulator, worker gone
