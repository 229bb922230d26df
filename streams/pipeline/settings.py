"""The worker's configuration (environment prefix ``RECONCILER_``), validated at start.

Defaults fit the local stack (``reconciler stack up``): with ``MOODLE_URL`` and
``MOODLE_TOKEN`` set, ``reconciler worker`` runs. Kafka connection settings are
``RECONCILER_KAFKA_*`` (:class:`~streams.kafka.settings.KafkaSettings`), topic names
``RECONCILER_TOPIC_*``, the Moodle client ``MOODLE_*``
(:class:`~streams.moodle.settings.MoodleSettings`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.mapping import check_template
from streams.domain.policy import FoldPolicy, GuardPolicy, PlanPolicy, RemovalMode

__all__ = ["WorkerSettings", "explain"]

_ROOT = Path(__file__).resolve().parents[2]


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECONCILER_", extra="ignore", frozen=True)

    app_id: str = Field("reconciler", description="Consumer group and prefix of internal topics.")
    partitions: int = Field(4, ge=1, le=256, description="Of the CDC, course and control topics.")
    store: Literal["rocksdb", "memory"] = Field("rocksdb", description="Table store.")
    data_dir: Path = Field(_ROOT / ".state" / "worker", description="RocksDB tables live here.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(9464, ge=0, le=65535, description="/livez /readyz /metrics /status.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    lag_interval_s: float = Field(
        15.0, gt=0, description="How often the consumer lag and client gauges are measured."
    )
    cdc_position_every: int = Field(
        100,
        ge=1,
        description="Each CDC partition's next offset is stored every this many records (a "
        "worker that takes it over reads back at most this many again; see gaps.py).",
    )
    faust_metrics: bool = Field(
        True, description="faust's own Prometheus sensor, served on /metrics/faust."
    )
    rocksdb_write_buffer_mb: int = Field(
        4, ge=1, description="Memtable size per table partition (faust's default: 64)."
    )
    rocksdb_block_cache_mb: int = Field(
        8, ge=1, description="Read cache per table partition (faust's default: 2048)."
    )
    start_from: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a NEW consumer group starts on the CDC and control topics "
        "(earliest: replay all history; latest: only changes from now on).",
    )

    # -- mapping and identities ----------------------------------------------------------------
    course_template: str = Field("{cod_anu}-{cod_elp}", description="Element → course idnumber.")
    stage_template: str | None = Field(None, description="Stage version → course (off).")
    default_role: str = "student"
    user_field: Literal["idnumber", "username", "email"] = Field(
        "idnumber", description="Moodle user field holding the student number (COD_ETU)."
    )
    role_ids: dict[str, int] = Field(
        default_factory=lambda: {"student": 5, "teacher": 4, "editingteacher": 3},
        description="Role shortname → Moodle role id (JSON).",
    )

    # -- policies ------------------------------------------------------------------------------
    paid_states: frozenset[str] | None = Field(None, description='e.g. ["P"]: paid only.')
    removal: RemovalMode = RemovalMode.SUSPEND
    grace_s: float = Field(3600.0, ge=0, description="Wait before a removal (seconds).")
    guard_window_s: float = Field(86_400.0, gt=0)
    guard_course_max_count: int = Field(30, ge=0)
    guard_course_max_share: float = Field(0.25, gt=0, le=1)
    guard_global_max_count: int = Field(1000, ge=0)
    guard_global_max_share: float = Field(0.05, gt=0, le=1)
    guard_share_floor: int = Field(20, ge=0)
    timestart: int = Field(0, ge=0, description="Enrolment start sent to Moodle (unix time).")
    timeend: int = Field(0, ge=0)

    # -- applier -------------------------------------------------------------------------------
    park_retry_s: float = Field(30.0, gt=0, description="Look again for missing users/courses.")
    retry_base_s: float = Field(2.0, gt=0, description="First retry after a transient failure.")
    retry_cap_s: float = Field(300.0, gt=0)
    max_courses_per_cycle: int = Field(500, ge=1)
    cycles_in_flight: int = Field(4, ge=1, description="Planning cycles whose calls overlap.")
    shadow: bool = Field(False, description="Plan and read, never write to Moodle.")

    # -- safety net and cohorts (streams/pipeline/drift.py, streams/pipeline/cohorts.py) --------
    drift_check_s: float = Field(
        21_600.0, ge=0, description="Periodic drift check of every owned course (0: off)."
    )
    drift_confirm_s: float = Field(
        60.0, ge=0, description="A difference counts only if still there this much later."
    )
    drift_repair: bool = Field(False, description="Repair the drift found (default: report).")
    cohort_template: str | None = Field(
        None,
        description="Administrative-enrolment cohort per stage version and year, e.g. "
        "IA-{cod_anu}-{cod_etp}-{cod_vrs_vet} (unset: no cohorts).",
    )

    # -- retention -----------------------------------------------------------------------------
    history_days: int = Field(400, ge=1, description="Audit, dead-letter, control topics.")
    course_events_days: int = Field(30, ge=1, description="Internal course-events topic.")

    @field_validator("course_template", "stage_template", "cohort_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and "cod_anu" not in check_template(value):
            raise ValueError(f"{value!r} must contain {{cod_anu}}: a new year needs new courses")
        return value

    def fold_policy(self) -> FoldPolicy:
        return FoldPolicy(paid_states=self.paid_states)

    def plan_policy(self) -> PlanPolicy:
        guard = GuardPolicy(
            window=timedelta(seconds=self.guard_window_s),
            course_max_count=self.guard_course_max_count,
            course_max_share=self.guard_course_max_share,
            global_max_count=self.guard_global_max_count,
            global_max_share=self.guard_global_max_share,
            share_floor=self.guard_share_floor,
        )
        return PlanPolicy(
            grace=timedelta(seconds=self.grace_s),
            removal=self.removal,
            guard=guard,
            timestart=self.timestart,
            timeend=self.timeend,
        )


def explain(error: ValidationError, prefix: str) -> str:
    """One line per bad setting, named as the operator sets it (``PREFIX_FIELD``)."""
    lines = []
    for item in error.errors(include_url=False):
        field = "_".join(str(part) for part in item["loc"] if isinstance(part, str))
        name = f"{prefix}{field.upper()}" if field else prefix.rstrip("_")
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
