"""The faust app: topics, tables and agents, each agent a few lines of wiring.

::

    CDC topics (keyed COD_IND) ──students──► <app>-course-events (keyed course) ──courses──┐
                                  │                                                      ▼
                                  └──► dead-letter topic             desired, courses tables
    control topic (keyed course) ──control──► courses table                               │
    <app>-course-results ◄── applier (plans, Moodle calls) ◄── dirty courses ◄────────────┘
          │──results──► ledger, courses tables                   └──► audit topic

Tables (RocksDB in production, memory in fast tests) are keyed so that one change writes one
small entry: students by ``COD_IND``, desired state by (course, user, role), the ledger by
(course, user), course records by course. Agents run with concurrency 1 (faust #606: more
can commit past unfinished work); an agent never raises on bad input (faust acks the record
and restarts the agent: it would be lost), it dead-letters it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from confluent_kafka import TopicPartition

from schemas.audit import AuditRecord
from schemas.control import ControlCommand
from schemas.course_events import CourseEvent, EnrolmentsObserved, FactsChanged, WritesSent
from schemas.deadletter import DeadLetterRecord
from schemas.mapping import CourseMappingRule
from streams import metrics
from streams.applier.applier import Applier, ApplierConfig
from streams.applier.gateway import MoodleGateway
from streams.domain.mapping import build_mapping
from streams.kafka.reader import ReadError, read_range
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.moodle import MoodleClient, MoodleSettings
from streams.pipeline import topics
from streams.pipeline.codec import decode_event, encode_event
from streams.pipeline.cohorts import CohortStage
from streams.pipeline.drift import DriftWatch
from streams.pipeline.flush import drain_before_commit
from streams.pipeline.gaps import Gap, Positions
from streams.pipeline.handlers import CourseView, MappingHolder, StudentView
from streams.pipeline.http import serve
from streams.pipeline.mapping_feed import MappingFeed
from streams.pipeline.observe import LagProbe, enable_faust_sensor, sample_client, set_build_info
from streams.pipeline.settings import WorkerSettings
from streams.pipeline.state import CourseTables

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "PipelineConfig"]


@dataclass(frozen=True)
class PipelineConfig:
    worker: WorkerSettings
    kafka: KafkaSettings
    topics: TopicNames
    moodle: MoodleSettings
    rules: dict[str, CourseMappingRule] = field(default_factory=dict)


class Pipeline:
    """One worker's faust app and the applier it drives."""

    def __init__(self, config: PipelineConfig, mapping_feed: MappingFeed | None = None) -> None:
        self.config = config
        w = config.worker
        self.ready = asyncio.Event()
        self.app = faust.App(
            w.app_id,
            broker=config.kafka.faust_broker(),
            broker_credentials=config.kafka.faust_credentials(),
            store="rocksdb://" if w.store == "rocksdb" else "memory://",
            datadir=str(w.data_dir),
            web_enabled=False,
            autodiscover=False,
            topic_partitions=w.partitions,
            topic_allow_declare=True,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",  # start_from: see streams.kafka.offsets
            producer_acks=-1,
            stream_wait_empty=False,
            key_serializer="raw",
            value_serializer="raw",
            # Batch what the agents produce (changelogs, course events): with no linger each
            # record went out in its own request and the socket writes took 16 % of the time.
            producer_linger=0.01,
            producer_max_batch_size=512 * 1024,
        )
        # faust stalls the agents whenever more than 100 records wait to be produced (table
        # writes are synchronous); a burst writes several per record read.
        self.app.producer.buffer.max_messages = 10_000
        # and its flush before each commit must not give up with records still queued
        drain_before_commit(self.app.producer.buffer)
        self._topics(config)
        self._tables(w.partitions)
        self.mapping = MappingHolder(self._build_mapping(config.rules))
        self.mapping_feed = mapping_feed
        self.moodle = MoodleClient(config.moodle, observer=metrics.observe_moodle_call)
        gateway = MoodleGateway(self.moodle, w.user_field, w.role_ids)
        self.applier = Applier(self.tables, _Outbox(self), gateway, _applier_config(w))
        self.students_view = StudentView(
            self.students, w.fold_policy(), self.mapping, self._emit_facts, self._dead_letter
        )
        self.courses_view = CourseView(self.tables, self.applier)
        self._agents()
        self.drift = self._drift_watch(gateway)
        self.cohorts = CohortStage(self, w.cohort_template) if w.cohort_template else None
        self.app.on_rebalance_complete.connect(self._on_ready)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.lag_probe: LagProbe | None = None
        self._sought: dict[Any, tuple[int, float]] = {}  # see _check_positions
        self._last_fold = self._ready_at = time.monotonic()
        set_build_info(w)
        if w.faust_metrics:
            enable_faust_sensor(self.app)

    # -- wiring --------------------------------------------------------------------------------
    def _topics(self, config: PipelineConfig) -> None:
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        parts = config.worker.partitions
        app_id = config.worker.app_id
        self.cdc = self.app.topic(*config.topics.cdc, partitions=parts, **raw)
        self.course_events = self.app.topic(topics.course_events(app_id), partitions=parts, **raw)
        self.course_results = self.app.topic(topics.course_results(app_id), partitions=parts, **raw)
        self.control = self.app.topic(config.topics.control, partitions=parts, **raw)
        self.audit_topic = self.app.topic(config.topics.audit, **raw)
        self.shadow_topic = self.app.topic(config.topics.shadow, **raw)
        self.dlq = self.app.topic(config.topics.deadletter, **raw)

    def _tables(self, partitions: int) -> None:
        w = self.config.worker
        # faust opens each table partition with 3 × 64 MB memtables and a 2 GB block cache:
        # 5 tables × 4 partitions made 510 MB resident at 100,000 enrolments. Sized here.
        options = {
            "write_buffer_size": w.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "target_file_size_base": 4 * w.rocksdb_write_buffer_mb * 2**20,
            "block_cache_size": w.rocksdb_block_cache_mb * 2**20,
            "block_cache_compressed_size": 0,
        }

        def table(name: str) -> Any:
            # keys and values are bytes we encode ourselves ("raw" serializers, as faust
            # picks for bytes: a str key type would be JSON-quoted and break prefix scans)
            return self.app.Table(
                name, partitions=partitions, key_type=bytes, value_type=bytes, options=options
            )

        self.students = table("students")
        self.positions = Positions(table("positions"), w.cdc_position_every)
        self.tables = CourseTables(
            table("desired"), table("ledger"), table("courses"), table("control"), table("doubts")
        )

    def _agents(self) -> None:
        agent = self.app.agent
        agent(self.cdc, name="students", concurrency=1)(self._students)
        agent(self.course_events, name="courses", concurrency=1)(self._courses)
        agent(self.course_results, name="results", concurrency=1)(self._courses)
        agent(self.control, name="control", concurrency=1)(self._control)
        self.app.task(self._run_applier)
        self.app.task(self._serve_http)
        self.app.timer(2.0)(self._follow_mapping)
        self.app.timer(5.0)(self._check_positions)
        self.app.timer(self.config.worker.lag_interval_s)(self._sample)

    def _drift_watch(self, gateway: MoodleGateway) -> DriftWatch | None:
        """The periodic drift check (streams/pipeline/drift.py), unless turned off."""
        w = self.config.worker
        if not w.drift_check_s:
            return None

        async def publish(event: EnrolmentsObserved) -> None:
            await self.course_events.send(key=event.course.encode(), value=encode_event(event))

        watch = DriftWatch(
            self.tables,
            gateway,
            w.plan_policy(),
            lambda course: not self.ready.is_set() or self.applier.schedule.is_in_flight(course),
            publish,
            interval_s=w.drift_check_s,
            confirm_s=w.drift_confirm_s,
            repair=w.drift_repair and not w.shadow,  # shadow mode leaves the ledger alone
        )
        self.app.task(watch.run)
        return watch

    def _build_mapping(self, rules: dict[str, CourseMappingRule]) -> Any:
        w = self.config.worker
        return build_mapping(rules.values(), w.course_template, w.stage_template, w.default_role)

    # -- agents ----------------------------------------------------------------------------------
    async def _students(self, stream: Any) -> None:
        positions = self.positions
        async for event in stream.events():
            m = event.message
            self._last_fold = time.monotonic()
            gap = positions.gap(m.topic, m.partition, m.offset)
            if gap is not None:
                await self._fold_skipped(m.topic, m.partition, gap)
            self.students_view.on_record(m.topic, m.partition, m.offset, m.key, m.value)
            positions.folded(m.topic, m.partition, m.offset, save=gap is not None)

    async def _fold_skipped(self, topic: str, partition: int, gap: Gap) -> None:
        """Records ``[start, end)`` this agent has not folded (see streams/pipeline/gaps.py):
        read back from Kafka and folded, in order, before the record after them."""
        where = f"{topic}[{partition}] {gap.start}..{gap.end - 1}"
        try:
            records = await asyncio.to_thread(
                read_range, self.config.kafka, topic, partition, gap.start, gap.end
            )
        except ReadError as exc:
            log.error("%s: records not folded and not readable: %s", where, exc)
            return
        if gap.takeover:
            log.info("%s: %d record(s) since the stored position read again", where, len(records))
        else:
            log.warning("%s: %d record(s) skipped by the consumer; read back", where, len(records))
        metrics.CDC_READ_BACK.labels("takeover" if gap.takeover else "skipped").inc(len(records))
        for offset, key, value in records:
            self.students_view.on_record(topic, partition, offset, key, value)
            self.positions.folded(topic, partition, offset)

    async def _check_positions(self) -> None:
        """Records at the end of a partition that the agent never folded and no later record
        will reveal (streams/pipeline/gaps.py): the group's commit is past them, or they are
        in Kafka while the agent has been idle for IDLE_S. The consumer is sought back."""
        if not self.ready.is_set():
            return
        consumer = self.app.consumer
        committed = getattr(consumer, "_committed_offset", {})  # faust's own bookkeeping
        idle = time.monotonic() - max(self._last_fold, self._ready_at) > IDLE_S
        for tp in self._cdc_assigned():
            gap = self.positions.behind(tp.topic, tp.partition, committed.get(tp))
            found = "committed"
            if gap is None and idle:  # records there, none coming: dropped by the fetcher
                gap = self.positions.behind(tp.topic, tp.partition, _highwater(consumer, tp))
                found = "idle"
            last, at = self._sought.get(tp, (-1, 0.0))
            if gap is None or (last == gap.start and time.monotonic() - at < RESEEK_S):
                continue  # nothing behind, or sought back there already: on its way
            self._sought[tp] = (gap.start, time.monotonic())
            where = f"{tp.topic}[{tp.partition}] {gap.start}..{gap.end - 1}"
            if gap.takeover:
                log.info("%s: not folded since the stored position: read again", where)
                found = "takeover"
            else:
                log.warning("%s: %s but never folded: read again", where, found)
            metrics.CDC_READ_BACK.labels(found).inc(gap.end - gap.start)
            await consumer.seek(tp, gap.start)

    def _cdc_assigned(self) -> list[Any]:
        """The CDC topic partitions this worker owns now."""
        cdc = set(self.config.topics.cdc)
        return [tp for tp in self.app.assignor.assigned_actives() if tp.topic in cdc]

    async def _courses(self, stream: Any) -> None:
        async for event in stream.events():
            course_event = self._parse_event(event)
            if course_event is not None:
                self.courses_view.on_event(course_event)

    async def _control(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                command = ControlCommand.model_validate_json(event.message.value or b"")
            except ValueError as exc:
                log.error("invalid control command dropped: %s", exc)
                continue
            self.courses_view.on_control(command)

    def _parse_event(self, event: Any) -> CourseEvent | None:
        try:
            return decode_event(event.message.value or b"")
        except ValueError:
            log.exception("undecodable course event at %s", event.message.tp)
            return None

    # -- sends -----------------------------------------------------------------------------------
    def _emit_facts(self, facts: FactsChanged) -> None:
        self.course_events.send_soon(key=facts.course.encode(), value=encode_event(facts))

    def _dead_letter(self, record: DeadLetterRecord) -> None:
        self.dlq.send_soon(key=record.topic.encode(), value=record.model_dump_json().encode())

    # -- lifecycle -------------------------------------------------------------------------------
    async def _on_ready(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.positions.keep_only(tp.partition for tp in self._cdc_assigned())
        courses = self.applier.sweep()
        self._ready_at = time.monotonic()  # the fetcher starts again from here
        self.applier.resume()
        self.ready.set()
        log.info("ready: %d course(s) to look at", courses)

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.ready.clear()
        self.applier.pause()
        self.students_view.forget_recent()

    async def _run_applier(self) -> None:
        try:
            await self.applier.run()
        finally:
            await self.moodle.aclose()
            if self.lag_probe is not None:
                self.lag_probe.close()

    async def _serve_http(self) -> None:
        w = self.config.worker
        runner = await serve(
            w.http_host, w.http_port, self.applier, self.ready.is_set, self._status_extra
        )
        log.info(
            "HTTP endpoints on http://%s:%d (/livez /readyz /metrics /status)",
            w.http_host,
            w.http_port,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    def _status_extra(self) -> dict[str, Any]:
        assigned = sorted(
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.course_events.get_topic_name()
        )
        return {
            "app_id": self.config.worker.app_id,
            "partitions": assigned,
            "mapping_rules": len(self.mapping_feed.rules) if self.mapping_feed else 0,
            "moodle_pacing_rate": self.moodle.pacing().rate_per_s,
        }

    def _consumed_topics(self) -> list[str]:
        own = (self.course_events, self.course_results, self.control)
        return [*self.config.topics.cdc, *(t.get_topic_name() for t in own)]

    async def _sample(self) -> None:
        """Client gauges, and the lag of the partitions this worker owns (in a thread)."""
        sample_client(self.moodle)
        if self.lag_probe is None:
            self.lag_probe = LagProbe(self.config.kafka, self.config.worker.app_id)
        topics = self._consumed_topics()
        owned = [
            TopicPartition(tp.topic, tp.partition)
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in topics
        ]
        await asyncio.to_thread(self.lag_probe.publish, topics, owned)

    async def _follow_mapping(self) -> None:
        feed = self.mapping_feed
        if feed is None or not feed.poll(self._dead_letter):
            return
        old = self.mapping.mapping
        self.mapping.mapping = self._build_mapping(feed.rules)
        moved = self.students_view.reroute(old, self.mapping.mapping)
        log.info("course mapping changed (%d rules): %d fact(s) re-routed", len(feed.rules), moved)


class _Worker(faust.Worker):
    """faust's worker, with logging kept at the configured level.

    mode's logging setup leaves the root logger at DEBUG (only its handler filters), so every
    ``log.debug`` of aiokafka and faust built a record: 8 % of the worker's time measured
    with py-spy under load. Libraries log at INFO at most, and httpx's per-request INFO
    lines (one per Moodle call) only at WARNING."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        logger.setLevel(level)
        for name in ("aiokafka", "faust", "mode", "kafka"):
            logging.getLogger(name).setLevel(max(level, logging.INFO))
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(max(level, logging.WARNING))


def worker_for(pipeline: Pipeline) -> faust.Worker:
    return _Worker(pipeline.app, loglevel=pipeline.config.worker.log_level, quiet=True)


# The students agent this long without a record while a CDC partition has records past the
# next offset to fold: the fetcher dropped them (see _check_positions).
IDLE_S = 5.0
# A seek back to the same offset is not repeated sooner: the records are on their way (a seek
# made while faust's fetcher was mid-batch can be lost: seen once, the next one worked).
RESEEK_S = 15.0


def _highwater(consumer: Any, tp: Any) -> int | None:
    try:
        return int(consumer.highwater(tp))
    except (TypeError, ValueError, LookupError, AttributeError):  # not fetched yet
        return None


class _Outbox:
    """Results to the course-results topic (→ ledger), audit records to the audit topic."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    # Buffered sends (faust's producer batches them; the agents' commits flush it): awaiting
    # each record's send was 8 % of the worker's time under load, one audit record at a time.
    async def publish(self, event: CourseEvent) -> None:
        self.pipeline.course_results.send_soon(key=event.course.encode(), value=encode_event(event))

    async def sent(self, events: Sequence[WritesSent]) -> None:
        """Write-ahead: sent past the buffer and awaited until Kafka acknowledges each."""
        topic = self.pipeline.course_results
        pending = [
            await topic.send(key=event.course.encode(), value=encode_event(event))
            for event in events
        ]
        await asyncio.gather(*pending)

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            self.pipeline.audit_topic.send_soon(
                key=record.command.course.encode(), value=record.model_dump_json().encode()
            )

    async def shadow(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            self.pipeline.shadow_topic.send_soon(
                key=record.command.course.encode(), value=record.model_dump_json().encode()
            )


def _applier_config(w: WorkerSettings) -> ApplierConfig:
    return ApplierConfig(
        policy=w.plan_policy(),
        park_retry_s=w.park_retry_s,
        retry_base_s=w.retry_base_s,
        retry_cap_s=w.retry_cap_s,
        max_courses_per_cycle=w.max_courses_per_cycle,
        cycles_in_flight=w.cycles_in_flight,
        shadow=w.shadow,
    )
