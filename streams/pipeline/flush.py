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

:func:`drain_before_commit` makes the buffer's ``flush`` wait until every record put in the
buffer before the flush began has been handed to the Kafka client, whose own flush then waits
for delivery. Records put while it waits are not waited for (the agents go on during a
commit: waiting for an empty buffer would hold commits off for a whole burst).
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
    returns only when every record put in it so far has been handed to the Kafka client."""
    put: Callable[[Any], None] = buffer.put
    send: Callable[[Any], Awaitable[None]] = buffer._send_pending
    # The buffer is a FIFO queue drained by one task, one record at a time: the n-th record
    # handed over is the n-th put.
    count = {"put": 0, "handed": 0}

    def counted_put(fut: Any) -> None:
        put(fut)
        count["put"] += 1

    async def send_pending(fut: Any) -> None:
        try:
            await send(fut)
        finally:
            count["handed"] += 1

    async def flush() -> None:
        target = count["put"]
        while count["handed"] < target:
            if buffer.state != "running":
                left = target - count["handed"]
                raise RuntimeError(f"producer buffer {buffer.state} with {left} record(s) unsent")
            buffer.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=RECHECK_S)

    buffer.put = counted_put
    buffer._send_pending = send_pending
    buffer.flush = flush
