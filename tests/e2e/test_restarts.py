"""Crashes and restarts: the worker killed mid-burst (RocksDB tables), Kafka Connect killed and
restarted (Debezium re-emits what it had not committed). Moodle ends equal to SQL, exactly,
and duplicates make no Moodle effect."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from streams.devstack.process import port_open
from streams.kafka.reader import partition_of
from streams.workload.oracle import expected_enrolments
from tests.support.backends import Services
from tests.support.e2e import Run, e2e_run, eventually, seed, wait_until
from tests.support.faults import CDC_TOPICS, metric_total
from tests.support.kafka import caught_up, commit_ends, end_offsets, read_all

pytestmark = pytest.mark.e2e

ELEMENTS = ["K1", "K2", "K3", "K4", "R1"]


@pytest.fixture
def run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with e2e_run(services, tmp_path_factory.mktemp("restarts"), size=400) as run:
        run.start_emulator(seed(run.slice, ELEMENTS, 400))
        yield run


async def test_worker_killed_mid_burst_restarts_from_rocksdb_and_converges_exactly(
    run: Run,
) -> None:
    run.start_worker(RECONCILER_STORE="rocksdb")
    # Slow Moodle down so that the burst is still being applied when the worker dies.
    run.emulator_post("/_emulator/faults", {"latency": {"distribution": "fixed", "mean_ms": 150}})
    for i in range(300):
        run.student(i, ELEMENTS[i % 4], *(["R1"] if i % 3 == 0 else []))
    wait_until(lambda: run.status()["applied_total"] > 0, 90, "burst under way")
    first = run.workers[0]
    first.kill()  # SIGKILL: no flush, no commit, no goodbye
    applied_before = len(_applied(run))
    run.emulator_post("/_emulator/faults", {"latency": {"distribution": "none"}})
    run.start_worker(RECONCILER_STORE="rocksdb")
    await eventually(lambda: _matches(run), 180, "Moodle equals SQL after the restart")
    pairs = [(r["command"]["course"], r["command"]["user"]) for r in _applied(run)]
    expected = {p for p in expected_enrolments(run.services.postgres_dsn, run.slice.range)}
    print(
        f"audited before the kill: {applied_before}; Moodle changes audited: {len(pairs)} "
        f"for {len(expected)} enrolments ({len(pairs) - len(set(pairs))} sent twice)"
    )
    assert set(pairs) == expected, "every enrolment audited, none extra"


async def test_connect_killed_and_restarted_duplicates_make_no_moodle_effect(
    run: Run, services: Services
) -> None:
    assert services.stack is not None, "needs the process stack (it restarts Kafka Connect)"
    run.start_worker(RECONCILER_STORE="memory")
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:  # one student per transaction, while Connect dies and comes back
        i = 0
        while not stop.is_set() and i < 120:
            run.student(i, "K1")
            written.append(i)
            i += 1
            time.sleep(0.02)  # pacing the writer, not waiting for a condition

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: len(written) >= 40, 30, "writes under way")
    pid = services.stack.connect.proc.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # offsets of the last second are not flushed
    cfg = services.stack.cfg
    wait_until(lambda: not port_open(cfg.host, cfg.connect_port), 30, "Connect's port released")
    services.stack.connect.start()
    services.stack.connect.wait_running("apogee-postgres", 120)
    writer.join(60)
    stop.set()
    await eventually(lambda: _matches(run), 120, "Moodle equals SQL")
    duplicates = wait_until(lambda: _duplicates(run), 60, "Debezium re-emitted records")
    applied = _applied(run)
    pairs = [(r["command"]["course"], r["command"]["user"]) for r in applied]
    print(f"{duplicates} duplicate CDC records folded as no-ops; {len(pairs)} Moodle changes")
    assert len(pairs) == len(set(pairs)) == len(written), "one Moodle change per student"


async def test_worker_killed_while_moodle_answers_leaves_no_unconfirmed_enrolment(
    run: Run,
) -> None:
    """Moodle applied the enrolment; the student was cancelled while the worker waited for
    Moodle's answer; the worker was killed before the answer came (so before its result
    reached Kafka). The ledger never knew of the enrolment and the desired state no longer
    wants it: only the write-ahead record of the call (WritesSent) tells the restarted worker
    to suspend it. Without it, Moodle kept the student active for good."""
    session = {"BROKER_SESSION_TIMEOUT": "10", "RECONCILER_STORE": "rocksdb"}
    run.start_worker(**session, MOODLE_TIMEOUT_S="300")
    run.student(0, "K1")
    run.student(1, "K2")  # the worker knows student 1's Moodle id from here on
    await eventually(lambda: _matches(run), 60, "first enrolments applied")
    changed = run.emulator_get("/_emulator/stats")["rows_changed"]
    # from now on Moodle applies each call, then holds its answer for two minutes
    run.emulator_post("/_emulator/faults", {"timeout_rate": 1, "timeout_s": 120, "when": "after"})
    run.sql(run.contract(1, "K1"))
    wait_until(
        lambda: run.emulator_get("/_emulator/stats")["rows_changed"] > changed,
        60,
        "Moodle applied the enrolment in K1",
    )
    cod_ind = run.slice.cod_ind(1)
    run.sql(("UPDATE apogee.ins_adm_etp SET eta_iae = 'A' WHERE cod_ind = %s", (cod_ind,)))
    # the cancellation folded and committed (the enrolment is no longer desired), the call
    # still out: the restarted worker has nothing to plan for student 1 in K1
    topics = [*CDC_TOPICS, f"{run.app_id}-course-events"]
    wait_until(
        lambda: caught_up(run.services.bootstrap_servers, run.app_id, topics),
        60,
        "the worker committed the cancellation",
    )
    run.workers[0].kill()  # waiting for Moodle's answer: no result, no audit record
    run.emulator_post("/_emulator/faults", {"timeout_rate": 0})
    run.start_worker(**session)
    await eventually(lambda: _matches(run), 120, "Moodle equals SQL after the restart")
    etu = run.slice.etu
    assert await run.roster("K1") == {etu(0): "active", etu(1): "suspended"}
    audited = [
        (r["command"]["user"], r["command"]["kind"])
        for r in _applied(run)
        if r["command"]["course"] == run.slice.course("K1")
    ]
    print(f"K1 changes audited: {audited}")
    assert audited[-1] == (etu(1), "suspend"), "set back by the restarted worker"


async def test_records_the_consumer_skipped_are_read_back_and_folded(run: Run) -> None:
    """faust can commit offsets past records its agent never saw (streams/pipeline/gaps.py).
    Made exactly here: the worker stopped, a student's records written, the group's offsets
    moved past them. The next record of their partition shows the gap; the worker reads
    them back from Kafka and folds them first."""
    env = {"RECONCILER_STORE": "rocksdb", "RECONCILER_CDC_POSITION_EVERY": "1"}
    bootstrap = run.services.bootstrap_servers
    partitions = len(end_offsets(bootstrap, CDC_TOPICS[0]))

    def partition(i: int) -> int:
        key = json.dumps({"cod_ind": run.slice.cod_ind(i)}, separators=(",", ":"))
        return partition_of(key.encode(), partitions)

    # three students whose records share a partition: the worker knows where it stands there
    first, skipped, later = [i for i in range(200) if partition(i) == partition(0)][:3]
    run.start_worker(**env)
    run.student(first, "K1")
    await eventually(lambda: _matches(run), 60, "the first student enrolled")
    run.workers[0].stop()  # leaves the group: its offsets can be moved
    before = {t: end_offsets(bootstrap, t)[partition(skipped)] for t in CDC_TOPICS}
    run.student(skipped, "K1")
    wait_until(
        lambda: all(end_offsets(bootstrap, t)[partition(skipped)] > before[t] for t in CDC_TOPICS),
        60,
        "Debezium published the student's records",
    )
    moved = commit_ends(bootstrap, run.app_id, CDC_TOPICS)  # as faust's commit past them
    run.start_worker(**env)
    # no later record: the periodic check finds the commit past the position, seeks back
    await eventually(lambda: _matches(run), 120, "the skipped student enrolled (end of log)")
    at_end = metric_total(run.worker_url, "reconciler_cdc_read_back_records_total")
    assert at_end >= len(CDC_TOPICS), "the student's three records, read again"
    run.workers[-1].stop()
    run.sql(run.contract(skipped, "K2"))  # skipped again, with a later record behind it
    contracts = CDC_TOPICS[2]
    wait_until(
        lambda: end_offsets(bootstrap, contracts)[partition(skipped)] > before[contracts] + 1,
        60,
        "Debezium published the new contract row",
    )
    commit_ends(bootstrap, run.app_id, CDC_TOPICS)
    run.student(later, "K1")
    run.start_worker(**env)
    await eventually(lambda: _matches(run), 120, "Moodle equals SQL, the skipped row too")
    etu = run.slice.etu
    roster = await run.roster("K1")
    assert {etu(first), etu(skipped), etu(later)} <= set(roster)
    assert etu(skipped) in await run.roster("K2")
    recovered = metric_total(run.worker_url, "reconciler_cdc_read_back_records_total")
    print(
        f"offsets moved on {moved} partition(s); records read back: {at_end:.0f} at the end "
        f"of the log, {recovered:.0f} before a later record"
    )
    assert recovered >= 1, "the contract row"


def _applied(run: Run) -> list[dict[str, object]]:
    records = read_all(run.services.bootstrap_servers, f"{run.app_id}.audit")
    return [r.value for r in records if r.value["outcome"] == "applied"]


def _duplicates(run: Run) -> float:
    with urllib.request.urlopen(f"{run.worker_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'reconciler_cdc_events_total\{[^}]*outcome="duplicate"[^}]*\} (\S+)', text)
    return sum(float(v) for v in found)


async def _matches(run: Run) -> bool:
    return await run.matches_sql(ELEMENTS) == ""
