"""The flush before a commit waits for every queued record (streams/pipeline/flush.py), on
faust's own producer buffer with a sender slower than faust's 0.1 s patience."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from faust.transport.producer import ProducerBuffer

from streams.pipeline.flush import drain_before_commit

SLOW_S = 0.15  # per record: longer than the 0.1 s faust's flush waits for progress


@pytest.fixture
async def buffer() -> AsyncIterator[Any]:
    app = faust.App("flush-test", broker="kafka://127.0.0.1:1", store="memory://")
    buf = app.producer.buffer
    buf.sent = []
    buf.sending = asyncio.Event()

    async def slow_send(fut: object) -> None:
        buf.sending.set()
        await asyncio.sleep(SLOW_S)
        buf.sent.append(fut)

    buf._send_pending = slow_send
    yield buf
    while not buf.pending.empty():  # what a test left queued: stopping would flush it
        buf.pending.get_nowait()
    vars(buf).pop("flush", None)  # faust's own again, for the empty buffer
    await buf.stop()


async def test_fausts_own_flush_returns_with_records_still_queued(buffer: Any) -> None:
    """The behaviour the module works around (if faust fixes it, this test says so)."""
    await buffer.start()
    for n in range(3):
        buffer.put(n)
    await ProducerBuffer.flush(buffer)
    assert buffer.size > 0
    assert len(buffer.sent) < 3


async def test_the_flush_returns_only_once_every_record_was_handed_over(buffer: Any) -> None:
    drain_before_commit(buffer)
    await buffer.start()
    for n in range(3):
        buffer.put(n)
    await buffer.flush()
    assert buffer.sent == [0, 1, 2]
    assert buffer.size == 0


async def test_the_record_being_sent_counts_until_it_is_handed_over(buffer: Any) -> None:
    drain_before_commit(buffer)
    await buffer.start()
    buffer.put("only")
    await asyncio.wait_for(buffer.sending.wait(), 5)  # taken off the queue, being sent
    assert buffer.size == 0
    assert buffer.sent == []
    await buffer.flush()
    assert buffer.sent == ["only"]


async def test_a_stopped_buffer_with_records_left_refuses_to_say_flushed(buffer: Any) -> None:
    drain_before_commit(buffer)
    buffer.put("left")  # never started: nothing sends it
    with pytest.raises(RuntimeError, match=r"1 record\(s\) unsent"):
        await buffer.flush()


async def test_records_put_while_it_waits_do_not_hold_it_off(buffer: Any) -> None:
    """The agents go on producing during a commit: it waits for what came before it only."""
    drain_before_commit(buffer)
    await buffer.start()
    buffer.put("before-1")
    buffer.put("before-2")
    flush = asyncio.create_task(buffer.flush())
    for more in range(100):  # a producer faster than the sender: the buffer never empties
        if flush.done():
            break
        buffer.put(f"after-{more}")
        await asyncio.sleep(SLOW_S / 3)
    assert flush.done(), "the flush waited for records put after it began"
    await flush
    assert buffer.sent[:2] == ["before-1", "before-2"]
    assert buffer.size > 0
