"""A faust app whose producer is slow, to see what its offset commits cover.

Run as ``python -m tests.support.commit_probe worker -l warn``; configured by
``PROBE_APP_ID``, ``PROBE_BROKER``, ``PROBE_DATADIR``, ``PROBE_INPUT``, ``PROBE_OUTPUT``,
``PROBE_SEND_DELAY_S`` (each record the producer buffer sends waits this long first: a busy
event loop, compressed) and ``PROBE_DRAIN`` (1: the worker's fix,
:func:`streams.pipeline.flush.drain_before_commit`). For each input record the agent writes
one output record, through the buffer like the worker's sends and table writes; the test
kills the process and compares the committed input offset with the outputs on the broker.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import faust

from streams.pipeline.flush import drain_before_commit

app = faust.App(
    os.environ.get("PROBE_APP_ID", "commit-probe"),
    broker=f"kafka://{os.environ.get('PROBE_BROKER', '127.0.0.1:9092')}",
    store="memory://",
    datadir=os.environ.get("PROBE_DATADIR", "/tmp/commit-probe"),
    web_enabled=False,
    table_standby_replicas=0,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=0.5,
    stream_wait_empty=False,
)
raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
source = app.topic(os.environ.get("PROBE_INPUT", "commit-probe-in"), partitions=1, **raw)
sink = app.topic(os.environ.get("PROBE_OUTPUT", "commit-probe-out"), partitions=1, **raw)

buffer = app.producer.buffer
buffer.max_messages = 10_000  # as the worker (streams/pipeline/app.py)
_send = buffer._send_pending
DELAY_S = float(os.environ.get("PROBE_SEND_DELAY_S", "0"))


async def _slow_send(fut: Any) -> None:
    await asyncio.sleep(DELAY_S)
    await _send(fut)


buffer._send_pending = _slow_send
if os.environ.get("PROBE_DRAIN") == "1":
    drain_before_commit(buffer)


@app.agent(source)
async def copy(stream: Any) -> None:
    async for event in stream.events():
        sink.send_soon(key=event.message.key, value=str(event.message.offset).encode())


if __name__ == "__main__":
    app.main()
