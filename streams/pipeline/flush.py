"""Commit offsets only once everything produced before is on the broker.

faust commits a consumer's offsets after ``app.producer.flush()``, meant to drain every record
the agents produced (table changelogs, course events, audit). Most of them go through faust's
producer buffer (``send_soon``: table writes are synchronous), and the buffer's ``flush``
gives up as soon as its sender has not sent a record within 0.1 s (faust-streaming 0.15.3,
``ProducerBuffer.flush_atmost``) — routine under load, when the event loop is busy with the
agents. The commit then goes ahead with records still queued: a worker killed at that moment
has committed past CDC records whose student state and course facts never reached Kafka, and
the worker that restarts, or takes the partitions over, never folds them (the enrolment was
missing for good; `tests/faults/test_two_workers.py` caught it once in 13 runs).

:func:`drain_before_commit` makes the buffer's ``flush`` wait until the buffer is empty and
the record its sender holds has been handed to the Kafka client, whose own flush then waits
for delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["drain_before_commit"]

RECHECK_S = 0.1


def drain_before_commit(buffer: Any) -> None:
    """Replace ``buffer.flush`` (a faust ``ProducerBuffer``, before it starts) with one that
    returns only when every record put in it has been handed to the Kafka client."""
    send: Callable[[Any], Awaitable[None]] = buffer._send_pending
    in_flight = 0

    async def send_pending(fut: Any) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await send(fut)
        finally:
            in_flight -= 1

    async def flush() -> None:
        while buffer.size or in_flight:
            if buffer.state != "running":
                raise RuntimeError(
                    f"producer buffer {buffer.state} with {buffer.size} record(s) unsent"
                )
            buffer.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=RECHECK_S)

    buffer._send_pending = send_pending
    buffer.flush = flush
