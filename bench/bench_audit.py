"""Audit query speed: a student's whole history out of 1,000,000 audit records (target ≤ 10 s).

Fills a fresh topic (as many partitions as the worker's, 4 by default) with realistic audit
records — the shape the applier writes: an enrolment command with its element fact and the
fact's two source rows (provenance with positions, commit time and Kafka coordinates), keyed
by course — for 20,000 students in 5,000 courses, the student under study holding 60 of them
spread over the whole topic. Then times, with the same code ``reconciler audit`` runs:

* the student's full history (every partition, no time window);
* one course's full history (one partition);
* everything in a one-hour window (offsets_for_times);
* ``reconciler audit --student … --brief`` as a process (startup included).

Needs the local stack (``reconciler stack up``; RECONCILER_STACK_* ports are honoured).

    .venv/bin/python bench/bench_audit.py [--records 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.audit import AuditRecord, Outcome  # noqa: E402
from schemas.commands import CommandKind, MoodleCommand  # noqa: E402
from schemas.enrolment import EnrolmentTuple  # noqa: E402
from schemas.facts import FactKind, MembershipFact  # noqa: E402
from schemas.lineage import SourceRef  # noqa: E402
from streams.devstack.config import StackConfig  # noqa: E402
from streams.kafka.reader import HistoryReader  # noqa: E402
from streams.kafka.settings import KafkaSettings  # noqa: E402
from streams.tools.audit import AuditQuery, search  # noqa: E402

STUDENTS, COURSES, TARGET_RECORDS = 20_000, 5_000, 60
T0 = datetime(2025, 9, 1, tzinfo=UTC)
TARGET = "29999999"


def template() -> str:
    """One record as the applier writes it, with placeholders where records differ."""
    ice = SourceRef(
        "IND_CONTRAT_ELP",
        "2025|@IND@|L1INF|1|@ELP@",
        123456789,
        "98765",
        None,
        0,
        False,
        1_757_000_000_000,
        "apogee.apogee.ind_contrat_elp",
        2,
        4_567_890,
    )
    iae = SourceRef(
        "INS_ADM_ETP",
        "2025|@IND@|L1INF|1|1",
        123456700,
        "98760",
        None,
        0,
        False,
        1_757_000_000_000,
        "apogee.apogee.ins_adm_etp",
        2,
        1_234_567,
    )
    fact = MembershipFact(
        "@USER@", FactKind.ELEMENT, "2025", "L1INF", 1, "@ELP@", cod_ind=1, provenance=(ice, iae)
    )
    command = MoodleCommand(
        CommandKind.ENROL,
        "@COURSE@",
        "@USER@",
        EnrolmentTuple("student", 0, 0, False),
        facts=(fact,),
    )
    record = AuditRecord(
        command=command,
        outcome=Outcome.APPLIED,
        at=T0,
        ws_function="enrol_manual_enrol_users",
        moodle_user_id=123456,
        moodle_course_id=4567,
        latency_s=1.25,
    )
    text = record.model_dump_json().replace('"cod_ind":1', '"cod_ind":@IND@')
    return text.replace(T0.isoformat().replace("+00:00", "Z"), "@AT@")


def fill(bootstrap: str, topic: str, count: int, seed: int = 7) -> tuple[int, float]:
    rng = random.Random(seed)
    text = template()
    targets = set(rng.sample(range(count), TARGET_RECORDS))
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "acks": 1,
            "queue.buffering.max.messages": 500_000,
        }
    )
    started, size = time.monotonic(), 0
    step = (365 * 86400) / count
    for i in range(count):
        user = TARGET if i in targets else str(21_000_000 + rng.randrange(STUDENTS))
        course = f"2025-E{rng.randrange(COURSES):05d}"
        at = T0 + timedelta(seconds=i * step)
        value = (
            text.replace("@USER@", user)
            .replace("@COURSE@", course)
            .replace("@ELP@", course[5:])
            .replace("@IND@", user[2:])
            .replace("@AT@", at.isoformat().replace("+00:00", "Z"))
        ).encode()
        size += len(value)
        while True:
            try:
                producer.produce(
                    topic, key=course.encode(), value=value, timestamp=int(at.timestamp() * 1000)
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return size, time.monotonic() - started


def timed(label: str, reader: HistoryReader, topic: str, query: AuditQuery) -> float:
    started = time.monotonic()
    result = search(reader, topic, query)
    elapsed = time.monotonic() - started
    read = sum(result.read.values())
    print(
        f"  {label:<44} {len(result.found):>6} matched of {read:>9,} read"
        f" in {elapsed:6.2f} s ({read / max(elapsed, 1e-9):,.0f} records/s)"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="Do not delete the topic.")
    args = parser.parse_args()
    bootstrap = StackConfig().bootstrap_servers
    topic = f"bench-audit-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"retention.ms": "-1", "cleanup.policy": "delete"}
    admin.create_topics([NewTopic(topic, args.partitions, 1, config=config)])[topic].result(30)
    try:
        print(f"filling {topic} ({args.partitions} partitions) with {args.records:,} records …")
        size, took = fill(bootstrap, topic, args.records)
        print(
            f"  {size / 2**20:,.0f} MiB ({size / args.records:,.0f} B per record) in {took:.1f} s"
        )
        settings = KafkaSettings(bootstrap_servers=bootstrap)
        print("queries (the code `reconciler audit` runs):")
        with HistoryReader(settings) as reader:
            student = timed(
                f"student {TARGET}, whole history",
                reader,
                topic,
                AuditQuery(students=frozenset({TARGET})),
            )
            timed(
                "course 2025-E00042, whole history",
                reader,
                topic,
                AuditQuery(courses=frozenset({"2025-E00042"})),
            )
            noon = T0 + timedelta(days=180, hours=12)
            timed(
                "everything in one hour",
                reader,
                topic,
                AuditQuery(since=noon, until=noon + timedelta(hours=1)),
            )
        env = {
            **os.environ,
            "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RECONCILER_TOPIC_AUDIT": topic,
        }
        started = time.monotonic()
        cli = subprocess.run(
            [sys.executable, "-m", "streams.cli", "audit", "--student", TARGET, "--brief"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        wall = time.monotonic() - started
        print(
            f"  reconciler audit --student {TARGET} --brief: exit {cli.returncode} in "
            f"{wall:.2f} s (process start included)"
        )
        print(cli.stdout.strip().splitlines()[-2])
        verdict = "ok" if student <= 10 else "OVER TARGET"
        print(
            f"student's full history out of {args.records:,} audit records: {student:.2f} s "
            f"(target ≤ 10 s: {verdict})"
        )
    finally:
        if not args.keep:
            admin.delete_topics([topic])[topic].result(60)


if __name__ == "__main__":
    main()
