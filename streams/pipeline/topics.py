"""Every topic the worker reads or writes, with its partitions, retention and cleanup policy.

* CDC topics (Debezium creates them at its first snapshot; created here first if the worker
  starts before the connector, with the connector's own settings): same partition count as
  the student table, since their records are folded into it where they land.
* ``<app>-course-events`` and ``<app>-course-results``: the course-keyed topics (facts for the
  desired state; results for the ledger), delete policy with a retention long enough to
  replay a month; the control topic shares their partitioning (its commands write the same
  tables).
* changelogs of the tables: compacted (latest value per key is the state).
* audit, dead-letter, control, shadow: history (delete policy, long retention) — audits
  replay them, and compaction would erase it.
* mapping rules: compacted, one partition (every worker reads all of it).
"""

from __future__ import annotations

from dataclasses import replace

from streams.kafka.admin import TopicSpec
from streams.kafka.settings import TopicNames

__all__ = ["TABLES", "course_events", "course_results", "specs"]

TABLES = ("students", "positions", "desired", "ledger", "courses", "control", "doubts")


def course_events(app_id: str) -> str:
    return f"{app_id}-course-events"


def course_results(app_id: str) -> str:
    return f"{app_id}-course-results"


def changelog(app_id: str, table: str) -> str:
    """faust's own naming, so faust finds the topics we created."""
    return f"{app_id}-{table}-changelog"


def specs(
    app_id: str,
    names: TopicNames,
    partitions: int,
    history_days: int,
    course_events_days: int,
) -> list[TopicSpec]:
    cdc = [TopicSpec.history(name, partitions, history_days) for name in names.cdc]
    course = [
        TopicSpec.history(course_events(app_id), partitions, course_events_days),
        TopicSpec.history(course_results(app_id), partitions, course_events_days),
        TopicSpec.history(names.control, partitions, history_days),
    ]
    tables = [TopicSpec.compacted(changelog(app_id, t), partitions) for t in TABLES]
    big = {"max.message.bytes": str(8 * 2**20)}
    free = [  # not co-partitioned with anything: an existing topic keeps its count
        TopicSpec.history(names.audit, partitions, history_days),
        TopicSpec.history(names.deadletter, 1, history_days, **big),
        TopicSpec.history(names.shadow, partitions, history_days),
        TopicSpec.compacted(names.mapping, 1),
    ]
    return cdc + course + tables + [replace(spec, must_match=False) for spec in free]
