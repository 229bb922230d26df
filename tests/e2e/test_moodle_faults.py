"""Moodle misbehaving under load: errors, slowness, calls that time out after taking effect, and
one bad item in a batch. Everything is retried from state, the bad item is isolated and parked,
nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, eventually, seed, wait_until

pytestmark = pytest.mark.e2e

ELEMENTS = ["F1", "F2", "F3", "BAD"]


@pytest.fixture
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with e2e_run(services, tmp_path_factory.mktemp("faults"), size=200) as run:
        data = seed(run.slice, ELEMENTS, 200)
        bad = next(c for c in data["courses"] if c["idnumber"] == run.slice.course("BAD"))
        bad["instances"] = [{"enrol": "manual", "status": 1}]  # disabled: every enrol fails
        run.start_emulator(data)
        yield run


async def test_errors_slowness_and_a_bad_item_converge_without_loss(run: Run) -> None:
    run.start_worker(MOODLE_TIMEOUT_S="1.5", MOODLE_MAX_ATTEMPTS="3")
    run.emulator_post(
        "/_emulator/faults",
        {
            "latency": {"distribution": "uniform", "mean_ms": 60, "max_ms": 120},
            "error_rate": 0.25,
            "error_kind": "http503",
            "timeout_rate": 0.05,
            "timeout_s": 3,
            "when": "after",  # the call takes effect, the answer never comes: retried
        },
    )
    for i in range(150):
        run.student(i, ELEMENTS[i % 3], *(["BAD"] if i == 7 else []))
    await eventually(lambda: _converged(run), 240, "the three good courses converge")
    parked = wait_until(
        lambda: run.status()["parked_courses"].get(run.slice.course("BAD")), 60, "BAD parked"
    )
    assert parked["reason"] == "no_manual_instance"
    stats = run.emulator_get("/_emulator/stats")
    print(f"emulator: {stats.get('calls')} calls, outcomes {stats.get('outcomes', '')}")
    run.emulator_post(
        "/_emulator/faults",
        {"error_rate": 0, "timeout_rate": 0, "latency": {"distribution": "none"}},
    )
    assert await run.roster("BAD") == {}


async def _converged(run: Run) -> bool:
    return await run.matches_sql(["F1", "F2", "F3"]) == ""
