"""Dead-letter records: an input the reconciler could not use, kept whole with a fixed reason."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from schemas._types import MESSAGE

__all__ = ["DeadLetterReason", "DeadLetterRecord"]


class DeadLetterReason(StrEnum):
    """The fixed list of reasons; a metric label, so never free text."""

    MALFORMED_JSON = "malformed_json"  # value is not JSON
    INVALID_ENVELOPE = "invalid_envelope"  # JSON, but not a valid Debezium envelope for the table
    UNKNOWN_TABLE = "unknown_table"  # a table the reconciler does not read
    UNSUPPORTED_OPERATION = "unsupported_operation"  # op 't' (truncate), 'm' (message), ...
    INVALID_MAPPING_RULE = "invalid_mapping_rule"  # a course-mapping rule that fails validation
    INVALID_MANUAL_SOURCE = "invalid_manual_source"  # a CSV/cohort/meta line that fails validation
    MOODLE_REJECTED = "moodle_rejected"  # a permanent Moodle error for one enrolment


class DeadLetterRecord(BaseModel):
    """The raw record (undecodable bytes escaped), where it was read, and why it was parked."""

    model_config = MESSAGE
    reason: DeadLetterReason
    detail: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str | None
    at: datetime
