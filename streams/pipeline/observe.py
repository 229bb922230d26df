"""The worker's own measurements that no agent makes: build info, consumer lag, client gauges.

* :func:`set_build_info` — ``reconciler_build_info{version, revision, store, shadow, …} 1``,
  once at start (a deployment marker for dashboards);
* :class:`LagProbe` — per topic, the high watermark minus the group's committed offset over the
  partitions this worker owns (what ``kafka-consumer-groups --describe`` prints), measured
  every ``RECONCILER_LAG_INTERVAL_S`` in a thread (librdkafka calls block). Summed over the
  workers of a group it is the group's lag, each partition counted once;
* :func:`sample_client` — the Moodle client's effective pacing rate and concurrency limit;
* :func:`enable_faust_sensor` — faust's own Prometheus sensor, in its own registry (its
  latencies are milliseconds), with a fixed ``faust_`` prefix so dashboards do not depend on
  the app id.

Example::

    probe = LagProbe(kafka_settings, group="reconciler")
    lags = probe.measure([TopicPartition("apogee.apogee.individu", 0)])  # {topic: records}
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams import metrics
from streams.kafka.settings import KafkaSettings
from streams.moodle import MoodleClient
from streams.pipeline.settings import WorkerSettings

log = logging.getLogger(__name__)

__all__ = ["LagProbe", "enable_faust_sensor", "sample_client", "set_build_info"]

_faust_metrics: Any = None


def set_build_info(worker: WorkerSettings) -> dict[str, str]:
    """Set ``reconciler_build_info`` once; returns the labels (the image sets the revision)."""
    info = {
        "version": _version("apogee-moodle-reconciler"),
        "revision": os.environ.get("RECONCILER_BUILD_REVISION", "unknown"),
        "python": platform.python_version(),
        "faust": _version("faust-streaming"),
        "app_id": worker.app_id,
        "store": worker.store,
        "shadow": str(worker.shadow).lower(),
    }
    metrics.BUILD.info(info)
    metrics.SHADOW.set(1 if worker.shadow else 0)
    return info


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def enable_faust_sensor(app: Any) -> None:
    """Install faust's PrometheusMonitor on ``app``, reporting into FAUST_REGISTRY.

    Its collectors are registered once per process (a registry refuses duplicates); a second
    app in the same process (tests) shares them."""
    global _faust_metrics
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    class _Monitor(PrometheusMonitor):
        """Without the per-key table hooks: a labelled counter bumped at every table read
        and write was 7 % of the worker's time under load (py-spy), for series nobody
        watches (the dashboard uses messages received and rebalances)."""

        def on_table_get(self, table: Any, key: Any) -> None:
            pass

        def on_table_set(self, table: Any, key: Any, value: Any) -> None:
            pass

        def on_table_del(self, table: Any, key: Any) -> None:
            pass

    if _faust_metrics is None:
        _faust_metrics = FaustMetrics.create(metrics.FAUST_REGISTRY, "faust")
    app.monitor = _Monitor(metrics=_faust_metrics)


def sample_client(moodle: MoodleClient) -> None:
    """The client's effective call rate and its adaptive limit on calls in flight."""
    metrics.PACING_RATE.set(moodle.pacing().rate_per_s)
    metrics.CONCURRENCY_LIMIT.set(moodle.concurrency().limit)


class LagProbe:
    """Committed offsets of ``group`` against high watermarks, with a consumer that never joins
    the group (no ``subscribe``) and never commits: reading them moves nothing."""

    def __init__(self, kafka: KafkaSettings, group: str, timeout_s: float = 10.0) -> None:
        self.group = group
        self.timeout_s = timeout_s
        self._consumer = Consumer(
            {
                **kafka.librdkafka(),
                "group.id": group,
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )

    def measure(self, partitions: Iterable[TopicPartition]) -> dict[str, int]:
        """Records behind, per topic, over ``partitions`` (blocking: run it in a thread)."""
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        lags: dict[str, int] = {}
        if not wanted:
            return lags
        committed = self._consumer.committed(wanted, timeout=self.timeout_s)
        for tp in committed:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=self.timeout_s)
            position = tp.offset if tp.offset >= 0 else low
            lags[tp.topic] = lags.get(tp.topic, 0) + max(0, int(high) - int(position))
        return lags

    def publish(self, topics: Iterable[str], partitions: Iterable[TopicPartition]) -> bool:
        """Measure and set the gauges (every topic in ``topics``, 0 when none is owned);
        False, gauges untouched, when Kafka did not answer in time."""
        try:
            lags = self.measure(partitions)
        except KafkaException as exc:
            log.warning("consumer lag of %s not measured: %s", self.group, exc)
            return False
        for topic in topics:
            metrics.CONSUMER_LAG.labels(topic).set(lags.get(topic, 0))
        metrics.LAST_LAG_CHECK.set(time.time())
        return True

    def close(self) -> None:
        self._consumer.close()
