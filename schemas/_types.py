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

from pydantic import BeforeValidator, ConfigDict, Field

__all__ = ["CONTRACT", "MESSAGE", "SOURCE_ROW", "Code", "DebeziumDate", "Number", "NumberCode"]

# Values held in large numbers (facts, desired, ledger): stdlib slotted dataclasses
# validated by pydantic at the boundary, 3.5x smaller than BaseModel instances (measured).
CONTRACT = ConfigDict(strict=True, extra="forbid")
# Transient messages (audit, DLQ, mapping rules): frozen BaseModels.
MESSAGE = ConfigDict(strict=True, extra="forbid", frozen=True)
# Source rows: APOGÉE tables have many more columns than we read; ignore the rest.
SOURCE_ROW = ConfigDict(strict=True, extra="ignore", frozen=True)

# What the source columns can physically hold: Oracle's NUMBER has at most 38 digits and a
# VARCHAR2 at most 4,000 bytes. A value beyond that did not come from APOGÉE; left unbounded it
# would become a fact (and a course or a user to look up in Moodle) as large as the record.
_MAX_DIGITS = 38
_MAX_NUMBER = 10**_MAX_DIGITS
_MAX_TEXT = 4000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_DAYS = 1_000_000  # beyond this an int cannot be days since 1970 (year 4707)
_MAX_MILLIS = 10**14  # beyond this it is microseconds


def _integral(text: str) -> int:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"expected an integer, got {text[:40]!r}") from None
    # Checked before int(): "1e99999999" would otherwise build a 100-million-digit int,
    # holding the event loop for minutes (one record stalled the whole worker).
    if not number.is_finite() or number.adjusted() >= _MAX_DIGITS:
        raise ValueError(f"expected an integer of at most {_MAX_DIGITS} digits, got {text[:40]!r}")
    if number != number.to_integral_value():
        raise ValueError(f"expected an integer, got {text[:40]!r}")
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
    try:
        if abs(value) < _MAX_DAYS:
            return date(1970, 1, 1) + timedelta(days=value)
        if abs(value) < _MAX_MILLIS:
            return (_EPOCH + timedelta(milliseconds=value)).date()
        return (_EPOCH + timedelta(microseconds=value)).date()
    except OverflowError:  # not a ValueError: pydantic would let it escape validation
        raise ValueError(f"date out of range: {str(value)[:40]}") from None


def _to_date(value: object) -> object:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, int) and not isinstance(value, bool):
        return _from_epoch_int(value)
    if isinstance(value, str):
        return date.fromisoformat(value.strip()[:10])
    return value


Number = Annotated[int, BeforeValidator(_to_int), Field(gt=-_MAX_NUMBER, lt=_MAX_NUMBER)]
"""An integer column (``NUMBER(p)``), sent as int or as a decimal string."""
Code = Annotated[str, BeforeValidator(_to_code), Field(max_length=_MAX_TEXT)]
"""A code column (``VARCHAR2``), stripped; an int is accepted if the stand-in typed it so."""
NumberCode = Annotated[str, BeforeValidator(_to_number_code), Field(max_length=_MAX_TEXT)]
"""A numeric identifier used as text (``COD_ETU`` → Moodle ``idnumber``): canonical digits."""
DebeziumDate = Annotated[date, BeforeValidator(_to_date)]
"""A ``DATE``: days or ms or µs since the epoch, or ISO text."""
