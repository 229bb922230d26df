"""A minimal faust app for the integration tests: Debezium INDIVIDU events -> a table.

Run as ``python -m tests.support.faust_probe worker -l warning``; configured by
``PROBE_APP_ID``, ``PROBE_BROKER``, ``PROBE_DATADIR``. The table ``cod_etu`` maps
cod_ind -> cod_etu (None once the person is deleted); its changelog topic on the real
broker is what the test reads back.
"""

from __future__ import annotations

import json
import os
from typing import Any

import faust

app = faust.App(
    os.environ.get("PROBE_APP_ID", "faust-probe"),
    broker=f"kafka://{os.environ.get('PROBE_BROKER', '127.0.0.1:9092')}",
    store="memory://",
    datadir=os.environ.get("PROBE_DATADIR", "/tmp/faust-probe"),
    web_enabled=False,
    topic_partitions=4,
    table_standby_replicas=0,
    consumer_auto_offset_reset="earliest",
)

individu = app.topic(
    "apogee.apogee.individu", key_serializer="raw", value_serializer="raw", partitions=4
)
cod_etu = app.Table("cod_etu", default=None, partitions=4, key_type=str, value_type=str)


@app.agent(individu)
async def fold(stream: Any) -> None:
    async for event in stream.events():
        if event.value is None:  # tombstone after a delete
            continue
        try:
            change = json.loads(event.value)
            after = change.get("after")
            key = str((after or change.get("before"))["cod_ind"])
            value = json.dumps(None if after is None else after.get("cod_etu"))
        except (ValueError, TypeError, KeyError, AttributeError):
            # The topic is shared with the other tests, whose bad records (tests/faults,
            # tests/e2e) it holds too: an agent that raises is restarted, record after record.
            continue
        cod_etu[key] = value


if __name__ == "__main__":
    app.main()
