"""Shared field types: tolerant coercion of Debezium column values into strict Python types.

Debezium serialises the same column differently depending on the connector and its
settings: ``NUMBER(8)`` is an int, or a string when ``decimal.handling.mode=string``;
``DATE`` is days since the epoch (PostgreSQL, ``time.precision.mode=adaptive``) or
milliseconds since the epoch (Oracle ``DATE`` is a timestamp). These validators accept
those spellings and nothing else, so the models themselves can stay strict.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict

__all__ = ["CONTRACT", "MESSAGE", "SOURCE_ROW", "Code", "DebeziumDate", "Number", "NumberCode"]

# Values held in large numbers (facts, desired, ledger): stdlib slotted dataclasses
# validated by pydantic at the boundary, 3.5x smaller than BaseModel instances (measured).
CONTRACT = ConfigDict(strict=True, extra="forbid")
# Transient messages (audit, DLQ, mapping rules): frozen BaseModels.
MESSAGE = ConfigDict(strict=True, extra="forbid", frozen=True)
# Source rows: APOGÉE tables have many more columns than we read; ignore the rest.
SOURCE_ROW = ConfigDict(strict=True, extra="ignore", frozen=True)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_DAYS = 1_000_000  # beyond this an int cannot be days since 1970 (year 4707)
_MAX_MILLIS = 10**14  # beyond this it is microseconds


def _integral(text: str) -> int:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"expected an integer, got {text!r}") from None
    if number != number.to_integral_value():
        raise ValueError(f"expected an integer, got {text!r}")
    return int(number)


def _to_int(value: object) -> object:
    if isinstance(value, str):
        return _integral(value)
    return value


def _to_code(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value


def _to_number_code(value: object) -> object:
    if isinstance(value, str) and value.strip():
        return str(_integral(value))
    return _to_code(value)


def _from_epoch_int(value: int) -> date:
    if abs(value) < _MAX_DAYS:
        return date(1970, 1, 1) + timedelta(days=value)
    if abs(value) < _MAX_MILLIS:
        return (_EPOCH + timedelta(milliseconds=value)).date()
    return (_EPOCH + timedelta(microseconds=value)).date()


def _to_date(value: object) -> object:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, int) and not isinstance(value, bool):
        return _from_epoch_int(value)
    if isinstance(value, str):
        return date.fromisoformat(value.strip()[:10])
    return value


Number = Annotated[int, BeforeValidator(_to_int)]
"""An integer column (``NUMBER(p)``), sent as int or as a decimal string."""
Code = Annotated[str, BeforeValidator(_to_code)]
"""A code column (``VARCHAR2``), stripped; an int is accepted if the stand-in typed it so."""
NumberCode = Annotated[str, BeforeValidator(_to_number_code)]
"""A numeric identifier used as text (``COD_ETU`` → Moodle ``idnumber``): canonical digits."""
DebeziumDate = Annotated[date, BeforeValidator(_to_date)]
"""A ``DATE``: days or ms or µs since the epoch, or ISO text."""
