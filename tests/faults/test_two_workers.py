"""Two workers in one consumer group, as two StatefulSet replicas: they share the partitions;
one is killed mid-load and the other takes its partitions over; Moodle ends equal to SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, seed, wait_until
from tests.support.faults import (
    WORKER_ENV,
    Load,
    audit_duplicates,
    cdc_ends,
    converge_or_lost,
    emulator_stats,
    exact_and_explained,
    report,
    running,
)
from tests.support.ports import free_ports

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ELEMENTS = [f"W{k:02d}" for k in range(12)]
STUDENTS = 150  # × scale
RATE = 8.0
ALL = [0, 1, 2, 3]  # the stack's partitions (RECONCILER_PARTITIONS, default 4)


@pytest.fixture
def run(services: Services, tmp_path_factory: pytest.TempPathFactory, scale: int) -> Iterator[Run]:
    students = STUDENTS * scale
    with e2e_run(services, tmp_path_factory.mktemp("two-workers"), size=students) as run:
        run.start_emulator(seed(run.slice, ELEMENTS, students))
        yield run


def partitions(run: Run, port: int) -> list[int]:
    try:
        return list(run.status(port)["partitions"])
    except OSError:
        return []


def applied(run: Run, port: int) -> int:
    try:
        return int(run.status(port)["applied_total"])
    except OSError:  # busy for a moment: asked again
        return -1


async def test_two_workers_share_the_partitions_and_one_takes_over_when_the_other_dies(
    run: Run, scale: int
) -> None:
    (other,) = free_ports(1)
    ports = [run.worker_port, other]
    for name, port in zip("ab", ports, strict=True):
        run.start_worker(
            **WORKER_ENV,
            RECONCILER_HTTP_PORT=str(port),
            RECONCILER_DATA_DIR=str(run.workdir / f"worker-{name}"),
        )

    def shared() -> bool:
        a, b = (partitions(run, port) for port in ports)
        return bool(a) and bool(b) and sorted(a + b) == ALL

    wait_until(shared, 120, "the two workers share the partitions")
    before = {port: partitions(run, port) for port in ports}
    load = Load(run, ELEMENTS, STUDENTS * scale, RATE, seed=2)
    started = time.monotonic()
    since = cdc_ends(run)  # the records of this test come after
    with running(load):
        wait_until(lambda: sum(applied(run, p) for p in ports) >= 60, 120, "load under way")
        # the victim: the one with more work done (it holds courses in the middle of changes)
        victim = max((0, 1), key=lambda i: applied(run, ports[i]))
        survivor = ports[1 - victim]
        dead = run.workers[victim]
        dead.kill()  # SIGKILL: no leave-group, the group waits out the session timeout
        killed = time.monotonic()
        wait_until(lambda: partitions(run, survivor) == ALL, 120, "the survivor takes over")
        takeover = time.monotonic() - killed
        mark = applied(run, survivor)
        wait_until(lambda: applied(run, survivor) >= mark + 30, 120, "the survivor goes on")
        load.stop()
    converged = await converge_or_lost(
        run, ELEMENTS, 240, "Moodle equals SQL after the takeover", since
    )

    _, verdict, records = await exact_and_explained(run, ELEMENTS)
    assert run.workers[1 - victim].alive(), "the survivor still runs"

    duplicates = audit_duplicates(records)
    stats = emulator_stats(run)
    report(
        f"two workers: partitions {before[ports[0]]} + {before[ports[1]]}; worker "
        f"{'ab'[victim]} SIGKILLed {killed - started:.0f} s into the load, the other held all "
        f"{len(ALL)} partitions {takeover:.1f} s later; load {load.transactions} transactions "
        f"on {STUDENTS * scale} students, {len(ELEMENTS)} courses; converged {converged:.1f} s "
        f"after the load stopped: {verdict.summary()}"
    )
    report(
        f"  duplicates: audit {duplicates.repeated} change(s) applied more than once of "
        f"{duplicates.changes} ({duplicates.by_kind or 'none'}); emulator "
        f"{stats['rows_unchanged']} row(s) found Moodle already as sent, "
        f"{stats['rows_changed']} changed it, in {stats['calls']} calls"
    )
