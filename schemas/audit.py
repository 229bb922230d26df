"""Audit records: every change attempted in Moodle, with its facts, WS call and outcome."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from schemas._types import MESSAGE
from schemas.commands import MoodleCommand

__all__ = ["AuditRecord", "Outcome"]


class Outcome(StrEnum):
    APPLIED = "applied"
    RETRY = "retry"  # temporary failure (network, 5xx, maintenance); will be retried
    REJECTED = "rejected"  # permanent failure (invalid user, role not assignable); parked
    PARKED = "parked"  # user or course not (yet) in Moodle; applied when it appears
    HELD = "held"  # mass-removal guard holds it until an operator approves
    DRY_RUN = "dry_run"


class AuditRecord(BaseModel):
    """``command.facts`` carry the lineage: source table/key, LSN/SCN, txId, commit time, offset."""

    model_config = MESSAGE
    command: MoodleCommand
    outcome: Outcome
    at: datetime
    ws_function: str | None = None
    error_code: str | None = None
    message: str | None = None
    attempt: int = 1
    moodle_user_id: int | None = None
    moodle_course_id: int | None = None
    latency_s: float | None = None  # source commit time of the causing change → ``at``
