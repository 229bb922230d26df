"""Ceiling: the topology's events per second against a bare consume-and-decode loop, and two
workers against one.

Not a test: it prints one JSON line, then a table. Run with the stack up::

    .venv/bin/python bench/bench_ceiling.py [--students 4000 --courses 500]

A year of ``students × 25`` contract rows is committed in PostgreSQL and captured by Debezium;
its CDC records (keys, values, partitions as Debezium wrote them) are copied into topics of
their own, so each run below reads exactly the same records and nothing else:

* **bare loop**: one confluent-kafka consumer reads every record and decodes its JSON — the
  most a Python process does with these records when it does nothing else;
* **topology, one worker**: a worker (instant emulator, RocksDB tables) is started on empty
  copies and ready; the records are then copied in, and the time runs until the worker has
  read them all (``reconciler_cdc_events_total``) — and, separately, until every enrolment is
  applied;
* **topology, two workers**: the same with two workers in one group (as two StatefulSet
  replicas), on fresh copies and a fresh application id.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from harness import (
    Bench,
    Worker,
    cdc_topics,
    emit,
    end_offsets,
    load,
    machine,
    records,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=4000)
    parser.add_argument("--courses", type=int, default=500)
    parser.add_argument("--elements", type=int, default=25)
    args = parser.parse_args()
    with Bench("ceiling") as bench:
        bench.clean()
        before = end_offsets(cdc_topics())
        rows = args.students * args.elements
        load(bench.dsn, args.students, args.courses, args.elements)
        expected = rows + 2 * args.students  # contracts, students, administrative enrolments
        captured = _captured(bench, before, expected)
        print(f"{len(captured):,} CDC records captured; measuring…", flush=True)
        bare = _bare(bench, captured)
        # a fresh Moodle for each topology: the enrolments another run made would be foreign
        one = _topology(bench, captured, rows, workers=1, fresh=args)
        two = _topology(bench, captured, rows, workers=2, fresh=args)
        result = {
            "bench": "ceiling",
            "machine": machine(),
            "cdc_records": len(captured),
            "contract_rows": rows,
            "bare_loop_per_s": round(bare),
            "one_worker_read_per_s": round(one["read_per_s"]),
            "one_worker_converged_s": one["converged_s"],
            "two_workers_read_per_s": round(two["read_per_s"]),
            "two_workers_converged_s": two["converged_s"],
            "topology_to_bare": round(one["read_per_s"] / bare, 3),
            "two_to_one": round(two["read_per_s"] / one["read_per_s"], 3),
            "two_to_one_converged": round(one["converged_s"] / two["converged_s"], 3),
        }
        emit(
            result,
            [
                ("machine", result["machine"]),
                ("records", f"{len(captured):,} CDC records ({rows:,} contract rows)"),
                ("bare consume + JSON decode", f"{result['bare_loop_per_s']:,} records/s"),
                (
                    "topology, 1 worker",
                    f"{result['one_worker_read_per_s']:,} records/s read, all applied in "
                    f"{one['converged_s']} s",
                ),
                (
                    "topology, 2 workers",
                    f"{result['two_workers_read_per_s']:,} records/s read, all applied in "
                    f"{two['converged_s']} s",
                ),
                ("topology / bare", result["topology_to_bare"]),
                (
                    "2 workers / 1",
                    f"{result['two_to_one']} (read), {result['two_to_one_converged']} (applied)",
                ),
            ],
        )


Record = tuple[str, int, bytes | None, bytes | None]  # table, partition, key, value


def _captured(bench: Bench, before: Any, expected: int) -> list[Record]:
    """The CDC records Debezium wrote for the load (waits until all are there)."""
    deadline = time.monotonic() + 1800
    while True:
        after = end_offsets(cdc_topics())
        if sum(after[tp] - before.get(tp, 0) for tp in after) >= expected:
            break
        if time.monotonic() > deadline:
            raise SystemExit("Debezium did not publish the load within 30 min")
        time.sleep(1.0)
    prefix_len = len(cdc_topics()[0].rsplit(".", 1)[0]) + 1
    return [
        (msg.topic()[prefix_len:], msg.partition(), msg.key(), msg.value())
        for msg in records(before, after)
    ]


def _copy(bench: Bench, captured: list[Record], prefix: str) -> None:
    producer = Producer(
        {"bootstrap.servers": bench.bootstrap, "linger.ms": 20, "compression.type": "lz4"}
    )
    for table, partition, key, value in captured:
        while True:
            try:
                producer.produce(f"{prefix}{table}", value, key, partition=partition)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120) != 0:
        raise SystemExit("copies not all delivered")


def _bare(bench: Bench, captured: list[Record]) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:8]}.apogee.apogee."
    from streams.kafka.admin import TopicSpec, ensure_topics
    from streams.kafka.settings import KafkaSettings

    tables = sorted({table for table, *_ in captured})
    ensure_topics(
        KafkaSettings(bootstrap_servers=bench.bootstrap),
        [TopicSpec.history(f"{prefix}{t}", bench.stack.cfg.topic_partitions, 1) for t in tables],
    )
    _copy(bench, captured, prefix)
    consumer = Consumer(
        {
            "bootstrap.servers": bench.bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = [
            TopicPartition(f"{prefix}{t}", p, 0)
            for t in tables
            for p in range(bench.stack.cfg.topic_partitions)
        ]
        consumer.assign(parts)
        decoded, t0 = 0, time.monotonic()
        while decoded < len(captured):
            for msg in consumer.consume(1000, 1.0):
                if msg.error() is None:
                    if msg.value() is not None:
                        json.loads(msg.value())
                    decoded += 1
            if time.monotonic() - t0 > 600:
                raise SystemExit(f"bare loop: {decoded}/{len(captured)} after 10 min")
        return decoded / (time.monotonic() - t0)
    finally:
        consumer.close()


def _topology(
    bench: Bench, captured: list[Record], rows: int, workers: int, fresh: Any
) -> dict[str, Any]:
    bench.emulator(fresh.students, fresh.courses, "instant", 4)
    run = uuid.uuid4().hex[:8]
    app_id, prefix = f"bench-{run}", f"bench-{run}.apogee.apogee."
    env = bench.app_env(
        app_id, RECONCILER_TOPIC_CDC_PREFIX=prefix, RECONCILER_START_FROM="earliest"
    )
    group = [bench.worker(env, name=f"w{run}-{n}") for n in range(workers)]
    for worker in group:
        worker.ready_in(300)
    _wait(lambda: all(_ready(w) for w in group), 300, "workers not all ready")
    t0 = time.monotonic()
    _copy(bench, captured, prefix)

    def read() -> float:
        return sum(w.metric("reconciler_cdc_events_total") for w in group)

    _wait(lambda: read() >= len(captured), 1800, "records not all read")
    read_s = time.monotonic() - t0
    _wait(lambda: sum(w.applied() for w in group) >= rows, 3600, "not all applied")
    converged_s = time.monotonic() - t0
    for worker in group:
        worker.child.stop()
    return {"read_per_s": len(captured) / read_s, "converged_s": round(converged_s, 1)}


def _ready(worker: Worker) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.http_port}/readyz", timeout=5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"ceiling: {what} within {timeout_s:.0f} s")
        time.sleep(0.25)


if __name__ == "__main__":
    main()
