"""The reconciler's own Prometheus metrics: seconds, ``_total`` counters, bounded labels.

Never a course, user or student id as a label (unbounded cardinality): per-course detail is
in the worker's ``/status`` document, the audit topic and the logs. Faust's own sensor, when
enabled, reports into a separate registry (``FAUST_REGISTRY``) so its milliseconds and its
per-topic series never mix with these.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from schemas.commands import CommandKind
from schemas.deadletter import DeadLetterReason
from streams.moodle.client import CALL_OUTCOMES  # the ``outcome`` label of MOODLE_CALLS

__all__ = [
    "APPLIED",
    "BUILD",
    "CALL_OUTCOMES",
    "CDC_EVENTS",
    "COMMIT_TO_APPLIED",
    "CONCURRENCY_LIMIT",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "DRIFT",
    "DRIFT_KINDS",
    "FAUST_REGISTRY",
    "HELD",
    "IN_FLIGHT",
    "LAST_APPLY",
    "LAST_LAG_CHECK",
    "MOODLE_CALLS",
    "MOODLE_CALL_SECONDS",
    "PACING_RATE",
    "PARKED",
    "PENDING",
    "REGISTRY",
    "SHADOW",
    "child",
    "observe_moodle_call",
]

REGISTRY = CollectorRegistry(auto_describe=True)
FAUST_REGISTRY = CollectorRegistry(auto_describe=True)

# What the periodic drift check finds (another part sets DRIFT): enrolments Moodle lacks,
# enrolments Moodle has that the ledger does not, and enrolments whose tuple differs.
DRIFT_KINDS = ("missing", "extra", "mismatched")

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 3600, 7200)

BUILD = Info("reconciler_build", "Version and settings that shape behaviour.", registry=REGISTRY)
CDC_EVENTS = Counter(
    "reconciler_cdc_events_total",
    "CDC records read by table, Debezium op and outcome (folded, duplicate, ignored, dead_letter).",
    ["table", "op", "outcome"],
    registry=REGISTRY,
)
CDC_READ_BACK = Counter(
    "reconciler_cdc_read_back_records_total",
    "CDC records read back from Kafka and folded because a later offset came first "
    "(streams/pipeline/gaps.py): found=skipped, the consumer skipped them (a consumer fault "
    "worked around); found=takeover, from the stored position of a partition just assigned; "
    "found=committed, offsets committed past them; found=idle, in Kafka while the agent idled "
    "(the consumer sought back to them in both).",
    ["found"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "reconciler_dead_letters_total",
    "Records put on the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
COMMIT_TO_APPLIED = Histogram(
    "reconciler_commit_to_applied_seconds",
    "From the source commit time of the change to the Moodle call that applied it.",
    ["change"],  # add | remove
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
APPLIED = Counter(
    "reconciler_enrolment_changes_total",
    "Enrolment changes by command kind and outcome (applied, rejected, parked, deferred, held; "
    "shadow: would have been sent, in shadow mode).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
MOODLE_CALLS = Counter(
    "reconciler_moodle_calls_total",
    "Moodle web-service calls by function and outcome (ok, error class).",
    ["function", "outcome"],
    registry=REGISTRY,
)
MOODLE_CALL_SECONDS = Histogram(
    "reconciler_moodle_call_duration_seconds",
    "Duration of Moodle web-service calls (one HTTP round trip).",
    ["function"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
CONCURRENCY_LIMIT = Gauge(
    "reconciler_moodle_concurrency_limit",
    "Moodle calls the client allows in flight now (adaptive limit).",
    registry=REGISTRY,
)
PACING_RATE = Gauge(
    "reconciler_moodle_pacing_rate_per_second",
    "Calls per second the client allows itself now (adaptive pacing).",
    registry=REGISTRY,
)
PENDING = Gauge(
    "reconciler_pending_courses",
    "Courses waiting to be reconciled (changed since their last plan).",
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "reconciler_in_flight_courses",
    "Courses being applied, or whose results are on their way to the ledger.",
    registry=REGISTRY,
)
PARKED = Gauge(
    "reconciler_parked",
    "Enrolments and courses parked (not applicable now), by reason.",
    ["reason"],
    registry=REGISTRY,
)
HELD = Gauge(
    "reconciler_held_removals",
    "Removals held by the mass-removal guard until an operator approves.",
    registry=REGISTRY,
)
LAST_APPLY = Gauge(
    "reconciler_last_apply_timestamp_seconds",
    "Unix time of the last Moodle write that succeeded.",
    registry=REGISTRY,
)
DRIFT = Gauge(
    "reconciler_drift_enrolments",
    "Enrolments where Moodle differs from the ledger at the last drift check, by kind.",
    ["kind"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "reconciler_consumer_lag_messages",
    "Records not yet committed by the worker's consumer group (high watermark minus committed "
    "offset), summed over the partitions this worker owns, by topic.",
    ["topic"],
    registry=REGISTRY,
)
LAST_LAG_CHECK = Gauge(
    "reconciler_consumer_lag_timestamp_seconds",
    "Unix time the consumer lag was last measured.",
    registry=REGISTRY,
)
SHADOW = Gauge(
    "reconciler_shadow_mode",
    "1 when the worker plans and reads but never writes to Moodle (shadow mode).",
    registry=REGISTRY,
)


# Series at 0 from the start: "nothing happened" is data, not absence, and the first
# increment counts in increase()/rate() (a series born at 1 has no earlier sample).
for _kind in DRIFT_KINDS:
    DRIFT.labels(_kind)
for _found in ("skipped", "takeover", "committed", "idle"):
    CDC_READ_BACK.labels(_found)
for _change in ("add", "remove"):
    COMMIT_TO_APPLIED.labels(_change)
for _command in CommandKind:
    for _applied in ("applied", "rejected", "parked", "deferred", "held", "shadow"):
        APPLIED.labels(_command.value, _applied)
for _reason in DeadLetterReason:
    DEAD_LETTERS.labels(_reason.value)
for _function in ("enrol_manual_enrol_users", "enrol_manual_unenrol_users"):
    MOODLE_CALL_SECONDS.labels(_function)
    for _outcome in CALL_OUTCOMES:
        MOODLE_CALLS.labels(_function, _outcome)


def observe_moodle_call(function: str, outcome: str, seconds: float) -> None:
    """The Moodle client's call observer (wired by the worker): one HTTP round trip."""
    MOODLE_CALLS.labels(function, outcome).inc()
    MOODLE_CALL_SECONDS.labels(function).observe(seconds)


@cache
def child(metric: Counter | Histogram | Gauge, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: label resolution was 4 % of the worker's
    time under load (a lock and a validation per call)."""
    return metric.labels(*labels)
