"""Reading history on the real broker: windows by time, partitions by key, retention, and the
``reconciler audit`` command over an audit topic with known records.

Topics are created per test with records whose Kafka timestamps are set, so every offset the
tools resolve is known in advance; retention is simulated with ``delete_records`` (what the
broker does when segments expire: the low watermark moves up).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import EnrolmentTuple
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from streams.kafka.producer import ToolProducer
from streams.kafka.reader import HistoryReader, partition_of
from streams.kafka.settings import KafkaSettings
from streams.tools.audit import command as audit_command
from tests.support.backends import Services

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
PARTITIONS = 4


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def topic(services: Services) -> Iterator[str]:
    name = f"t-history-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": services.bootstrap_servers})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    try:
        yield name
    finally:
        admin.delete_topics([name])[name].result(30)


def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None, int]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value, timestamp in records:
        producer.produce(topic, key=key, value=value, timestamp=timestamp)
    assert producer.flush(30) == 0


def settings(services: Services) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=services.bootstrap_servers)


def test_a_key_lands_where_partition_of_says(services: Services, topic: str) -> None:
    keys = [f"2026-C{i:03d}".encode() for i in range(40)]
    with ToolProducer(settings(services)) as producer:
        for key in keys:
            producer.send(topic, key, b"x")
    with HistoryReader(settings(services)) as reader:
        spans = reader.resolve(topic)
        placed = {m.key(): m.partition() for batch in reader.batches(spans) for m in batch}
    assert placed == {key: partition_of(key, PARTITIONS) for key in keys}
    assert len(set(placed.values())) > 1


def test_a_window_in_time_resolves_to_offsets_and_merges_in_time_order(
    services: Services, topic: str
) -> None:
    # key k{i} on whatever partition murmur2 says; one record a minute
    records = [
        (f"k{i % 7}".encode(), f"{i}".encode(), ms(T0 + timedelta(minutes=i))) for i in range(60)
    ]
    produce(services.bootstrap_servers, topic, records)
    with HistoryReader(settings(services)) as reader:
        since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=19, seconds=30)
        spans = reader.resolve(topic, ms(since), ms(until))
        inside = [int(m.value()) for batch in reader.batches(spans) for m in batch]
        assert sorted(inside) == list(range(10, 20))
        assert all(not s.expired for s in spans)
        merged = [int(m.value() or b"") for m in reader.merged(reader.resolve(topic))]
        assert merged == list(range(60))
        counted: list[int] = []
        list(reader.batches(reader.resolve(topic), counted.append))
        assert sum(counted) == 60


def test_a_window_older_than_what_retention_kept_is_flagged(services: Services, topic: str) -> None:
    produce(
        services.bootstrap_servers,
        topic,
        [(b"k", b"v", ms(T0 + timedelta(minutes=i))) for i in range(10)],
    )
    p = partition_of(b"k", PARTITIONS)
    admin = AdminClient({"bootstrap.servers": services.bootstrap_servers})
    admin.delete_records([TopicPartition(topic, p, 4)])[TopicPartition(topic, p, 4)].result(30)
    with HistoryReader(settings(services)) as reader:
        (old,) = reader.resolve(topic, ms(T0), None, [p])
        assert (old.low, old.start, old.expired) == (4, 4, True)
        (recent,) = reader.resolve(topic, ms(T0 + timedelta(minutes=6)), None, [p])
        assert (recent.start, recent.expired) == (6, False)
        assert reader.first_timestamp(topic, p, old.low) == ms(T0 + timedelta(minutes=4))


def test_the_latest_value_of_each_key_and_tombstones(services: Services, topic: str) -> None:
    t = ms(T0)
    produce(
        services.bootstrap_servers,
        topic,
        [
            (b"c1\x1fu1", b"a", t),
            (b"c1\x1fu2", b"b", t),
            (b"c1\x1fu1", b"c", t),
            (b"c1\x1fu2", None, t),
            (b"c2\x1fu1", b"d", t),
        ],
    )
    with HistoryReader(settings(services)) as reader:
        assert reader.latest(topic) == {b"c1\x1fu1": b"c", b"c2\x1fu1": b"d"}
        only_c1 = reader.latest(topic, keep=lambda key: key.startswith(b"c1\x1f"))
        assert only_c1 == {b"c1\x1fu1": b"c"}


# -- reconciler audit on a known audit topic ---------------------------------------------------
def record(user: str, course: str, kind: CommandKind, at: datetime) -> AuditRecord:
    ref = SourceRef(
        "IND_CONTRAT_ELP",
        f"2026|1|L1|1|{course[-6:]}",
        1000,
        "7",
        committed_ms=ms(at) - 2000,
        topic="apogee.apogee.ind_contrat_elp",
        partition=1,
        offset=42,
    )
    fact = MembershipFact(user, FactKind.ELEMENT, "2026", "L1", 1, course[-6:], provenance=(ref,))
    suspend = kind is CommandKind.SUSPEND
    command = MoodleCommand(
        kind, course, user, EnrolmentTuple("student", 0, 0, suspend), facts=(fact,)
    )
    return AuditRecord(
        command=command,
        outcome=Outcome.APPLIED,
        at=at,
        ws_function="enrol_manual_enrol_users",
        latency_s=2.0,
    )


def audit_history(services: Services, topic: str) -> list[AuditRecord]:
    """Student 21000042 enrolled in C1 and C2 on day 1, suspended from C1 on day 2 at 14:02;
    forty other students in C1, C2 and C3 meanwhile."""
    out = [
        record("21000042", "2026-INF101", CommandKind.ENROL, T0),
        record("21000042", "2026-INF102", CommandKind.ENROL, T0 + timedelta(minutes=1)),
        record(
            "21000042",
            "2026-INF101",
            CommandKind.SUSPEND,
            T0 + timedelta(days=1, hours=6, minutes=2),
        ),
    ]
    for i in range(40):
        course = ("2026-INF101", "2026-INF102", "2026-INF103")[i % 3]
        out.append(record(f"2100{i:04d}", course, CommandKind.ENROL, T0 + timedelta(hours=i)))
    produce(
        services.bootstrap_servers,
        topic,
        [(r.command.course.encode(), r.model_dump_json().encode(), ms(r.at) + 5) for r in out],
    )
    return out


def run_audit(services: Services, topic: str, *args: str) -> tuple[int, str]:
    env = {
        "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers,
        "RECONCILER_TOPIC_AUDIT": topic,
    }
    result = CliRunner().invoke(audit_command, list(args), env=env)
    return result.exit_code, result.output


def test_why_was_a_student_suspended_on_that_day(services: Services, topic: str) -> None:
    audit_history(services, topic)
    code, out = run_audit(
        services, topic, "--student", "21000042", "--course", "2026-INF101", "--on", "2026-03-11"
    )
    assert code == 0, out
    assert "2026-03-11 14:02:00Z  2026-INF101  21000042  suspend  applied   2.0s" in out
    assert "changed by IND_CONTRAT_ELP 2026|1|L1|1|INF101, committed 2026-03-11 14:01:58Z" in out
    assert "lsn/scn 1000  tx 7  apogee.apogee.ind_contrat_elp[1]@42" in out
    assert "1 record(s) matched" in out
    p = partition_of(b"2026-INF101", PARTITIONS)
    assert f"(p{p}:" in out and out.count("p") and f"read (p{p}: " in out  # one partition read
    assert max(len(line) for line in out.splitlines()) <= 100


def test_a_students_whole_history_as_json_lines(services: Services, topic: str) -> None:
    audit_history(services, topic)
    code, out = run_audit(services, topic, "--student", "21000042", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["command"]["course"], r["command"]["kind"]) for r in rows] == [
        ("2026-INF101", "enrol"),
        ("2026-INF102", "enrol"),
        ("2026-INF101", "suspend"),
    ]
    assert {r["kafka"]["topic"] for r in rows} == {topic}
    assert rows[2]["kafka"]["partition"] == partition_of(b"2026-INF101", PARTITIONS)


def test_a_course_over_a_window_and_nothing_matching_exits_1(
    services: Services, topic: str
) -> None:
    history = audit_history(services, topic)
    code, out = run_audit(
        services,
        topic,
        "--course",
        "2026-INF103",
        "--since",
        "2026-03-10T08:00",
        "--until",
        "2026-03-10T20:00",
        "--brief",
    )
    assert code == 0
    expected = [
        r for r in history if r.command.course == "2026-INF103" and r.at <= T0 + timedelta(hours=12)
    ]
    assert f"{len(expected)} record(s) matched" in out and "call " not in out
    code, out = run_audit(services, topic, "--student", "99999999")
    assert code == 1 and "0 record(s) matched" in out


def test_a_window_older_than_retention_exits_5_and_says_so(services: Services, topic: str) -> None:
    audit_history(services, topic)
    p = partition_of(b"2026-INF101", PARTITIONS)
    admin = AdminClient({"bootstrap.servers": services.bootstrap_servers})
    admin.delete_records([TopicPartition(topic, p, 2)])[TopicPartition(topic, p, 2)].result(30)
    code, out = run_audit(services, topic, "--course", "2026-INF101", "--since", "2026-03-01")
    assert code == 5, out
    assert "WARNING: the window starts before the retained history" in out
    assert f"p{p} (kept from offset 2)" in out


def test_a_large_scan_shared_among_processes_finds_the_same(
    services: Services, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.tools import audit

    audit_history(services, topic)
    query = audit.AuditQuery(students=frozenset({"21000042"}))
    with HistoryReader(settings(services)) as reader:
        alone = audit.search(reader, topic, query)
        monkeypatch.setattr(audit, "PARALLEL_FROM", 0)
        resolved = audit.resolve(reader, topic, query)
        assert audit.workers_for(resolved, cpus=2) == 2
        counted: list[int] = []
        shared = audit.scan_in_processes(reader.settings, resolved, query, 2, counted.append)
    assert [f.as_json() for f in shared.found] == [f.as_json() for f in alone.found]
    assert len(shared.found) == 3 and shared.read == alone.read
    assert sum(counted) == sum(alone.read.values())


# -- reconciler replay on CDC topics with known records -----------------------------------------
@pytest.fixture
def cdc(services: Services) -> Iterator[str]:
    """Three CDC topics under a prefix of their own, filled by the test."""
    prefix = f"t-cdc-{uuid.uuid4().hex[:8]}."
    names = [f"{prefix}{t}" for t in ("individu", "ins_adm_etp", "ind_contrat_elp")]
    admin = AdminClient({"bootstrap.servers": services.bootstrap_servers})
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(30)
    try:
        yield prefix
    finally:
        for future in admin.delete_topics(names).values():
            future.result(30)


def run_replay(services: Services, prefix: str, *args: str) -> tuple[int, str]:
    from streams.tools.replay import command as replay_command

    env = {
        "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers,
        "RECONCILER_TOPIC_CDC_PREFIX": prefix,
        "RECONCILER_TOPIC_MAPPING": f"{prefix}mapping",
        "RECONCILER_TOPIC_AUDIT": f"{prefix}audit",
        "RECONCILER_APP_ID": prefix.rstrip("."),
    }
    result = CliRunner().invoke(replay_command, list(args), env=env)
    return result.exit_code, result.output


def test_replay_of_cdc_topics_and_a_history_cut_by_retention(services: Services, cdc: str) -> None:
    from schemas.debezium import Table
    from tests.unit.domain.apogee import Db

    db = Db()
    for ind in (1, 2, 3):
        db.write(Table.INDIVIDU, cod_ind=ind, cod_etu=21000000 + ind, lib_nom_pat_ind="X")
        db.write(
            Table.INS_ADM_ETP,
            cod_anu="2026",
            cod_ind=ind,
            cod_etp="L1INF",
            cod_vrs_vet=1,
            num_occ_iae=1,
            eta_iae="E",
            eta_pmt_iae="P",
        )
        db.write(
            Table.IND_CONTRAT_ELP,
            cod_anu="2026",
            cod_ind=ind,
            cod_etp="L1INF",
            cod_vrs_vet=1,
            cod_elp="INF101",
            tem_prc_ice="N",
        )
        db.commit()
    first = len(db.records)
    db.delete(
        Table.IND_CONTRAT_ELP,
        cod_anu="2026",
        cod_ind=2,
        cod_etp="L1INF",
        cod_vrs_vet=1,
        cod_elp="INF101",
    )
    stamp = {r: ms(T0 + timedelta(minutes=n)) for n, r in enumerate(db.records)}
    later = {r: ms(T0 + timedelta(days=1)) for r in db.records[first:]}
    producer = Producer(
        {"bootstrap.servers": services.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    for r in db.records:
        topic = cdc + r.topic.rsplit(".", 1)[1]
        key = json.dumps({"cod_ind": r.cod_ind}).encode()
        producer.produce(topic, key=key, value=r.value, timestamp=later.get(r, stamp[r]))
    assert producer.flush(30) == 0

    code, out = run_replay(services, cdc, "--at", "2026-03-10T12:00", "--members")
    assert code == 0, out
    assert "2026-INF101        3  student 3" in out  # before the delete
    code, out = run_replay(services, cdc, "--json", "--members")
    assert code == 0, out
    (row,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert row["members"] == [["21000001", "student"], ["21000003", "student"]]

    p = partition_of(json.dumps({"cod_ind": 1}).encode(), PARTITIONS)
    admin = AdminClient({"bootstrap.servers": services.bootstrap_servers})
    tp = TopicPartition(f"{cdc}individu", p, 1)
    admin.delete_records([tp])[tp].result(30)
    code, out = run_replay(services, cdc)
    assert code == 5, out
    assert f"{cdc}individu[{p}]: records before offset 1 were deleted by retention" in out
    assert "incomplete" in out
