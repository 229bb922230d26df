"""``reconciler worker``: validate the configuration, create the topics, run the pipeline.

Examples::

    # against the local stack (`reconciler stack up`) and the emulator
    MOODLE_URL=http://127.0.0.1:8099 MOODLE_TOKEN=… reconciler worker

    # a real site, the token from a mounted Secret, RocksDB tables on a volume
    MOODLE_URL=https://moodle.example.edu MOODLE_SECRETS_DIR=/run/secrets/moodle \\
    RECONCILER_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 RECONCILER_DATA_DIR=/data reconciler worker

Exit codes: 0 stopped cleanly, 2 invalid configuration, 3 Kafka topics unusable.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click
from pydantic import ValidationError

from schemas.deadletter import DeadLetterRecord
from streams.kafka.admin import TopicError, ensure_topics
from streams.kafka.offsets import commit_end_offsets_if_new
from streams.kafka.settings import KafkaSettings, TopicNames
from streams.moodle import MoodleSettings
from streams.pipeline import topics as topic_specs
from streams.pipeline.settings import WorkerSettings, explain

log = logging.getLogger(__name__)

__all__ = ["command", "load_config"]


def load_config(
    **overrides: object,
) -> tuple[WorkerSettings, KafkaSettings, TopicNames, MoodleSettings]:
    """Every setting from the environment; ``SystemExit(2)`` naming the bad ones."""
    parts: list[object] = []
    for cls, prefix, kwargs in (
        (WorkerSettings, "RECONCILER_", overrides),
        (KafkaSettings, "RECONCILER_KAFKA_", {}),
        (TopicNames, "RECONCILER_TOPIC_", {}),
    ):
        try:
            parts.append(cls(**kwargs))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise click.ClickException(explain(exc, prefix)) from None
    try:
        parts.append(MoodleSettings.from_env())
    except ValidationError as exc:
        raise click.ClickException(explain(exc, "MOODLE_")) from None
    return tuple(parts)  # type: ignore[return-value]


@click.command(name="worker")
@click.option("--shadow", is_flag=True, default=None, help="Plan and read Moodle, never write.")
@click.option(
    "--store",
    type=click.Choice(["rocksdb", "memory"]),
    default=None,
    help="Table store (default RECONCILER_STORE, rocksdb).",
)
def command(shadow: bool | None, store: str | None) -> None:
    """Run the reconciler worker (configuration from the environment; see README)."""
    overrides = {k: v for k, v in {"shadow": shadow, "store": store}.items() if v is not None}
    try:
        worker, kafka, names, moodle = load_config(**overrides)
    except click.ClickException as exc:
        click.echo(f"reconciler worker: {exc.message}", err=True)
        sys.exit(2)
    logging.basicConfig(
        level=worker.log_level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s"
    )
    specs = topic_specs.specs(
        worker.app_id, names, worker.partitions, worker.history_days, worker.course_events_days
    )
    if worker.cohort_template:
        from streams.pipeline.cohorts import cohort_topic_specs

        specs += cohort_topic_specs(worker.app_id, worker.partitions, worker.history_days)
    try:
        created = ensure_topics(kafka, specs)
    except TopicError as exc:
        click.echo(f"reconciler worker: {exc}", err=True)
        sys.exit(3)
    if created:
        log.info("created topics: %s", ", ".join(created))
    if worker.start_from == "latest":
        moved = commit_end_offsets_if_new(kafka, worker.app_id, [*names.cdc, names.control])
        if moved:
            log.info(
                "new consumer group %s starts at the end of %d partition(s)", worker.app_id, moved
            )

    from streams.pipeline.app import Pipeline, PipelineConfig  # faust is slow to import
    from streams.pipeline.mapping_feed import MappingFeed

    feed = MappingFeed(kafka, names.mapping)
    rules = feed.load(_startup_reject(kafka, names.deadletter))
    config = PipelineConfig(worker, kafka, names, moodle, dict(rules))
    pipeline = Pipeline(config, feed)
    run(pipeline)


def run(pipeline: object) -> None:
    from streams.pipeline.app import Pipeline, worker_for

    assert isinstance(pipeline, Pipeline)
    worker_for(pipeline).execute_from_commandline()


def _startup_reject(kafka: KafkaSettings, topic: str) -> Callable[[DeadLetterRecord], None]:
    """Dead-letter invalid mapping rules found before faust starts (a plain producer)."""
    from confluent_kafka import Producer

    producer = Producer({**kafka.librdkafka(), "log_level": 3})

    def reject(record: DeadLetterRecord) -> None:
        producer.produce(topic, key=record.topic.encode(), value=record.model_dump_json())
        producer.flush(10)

    return reject
