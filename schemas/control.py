"""Operator control commands, sent by ``reconciler`` commands on the control topic.

Keyed by course ``idnumber``; a command for every course (``course`` is ``None``) is sent
once to each partition, so each worker applies it to the courses it owns.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from schemas._types import MESSAGE

__all__ = ["ControlAction", "ControlCommand"]


class ControlAction(StrEnum):
    APPROVE = "approve"  # removals held by the guard and due at or before ``at`` go ahead
    REJECT = "reject"  # removals held and due at or before ``at`` are dropped: users stay
    PAUSE = "pause"  # no Moodle call for the course until resumed
    RESUME = "resume"


class ControlCommand(BaseModel):
    model_config = MESSAGE
    action: ControlAction
    course: str | None = Field(None, description="Moodle course idnumber; None = every course.")
    at: datetime
    by: str = Field("", description="Who sent it (operator name), for the audit trail.")
    reason: str = ""
