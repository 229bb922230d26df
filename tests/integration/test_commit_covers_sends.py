"""A committed offset covers every record produced for what it commits, on the real broker.

faust commits after flushing its producer, but its buffer's flush gives up when its sender
has not sent for 0.1 s: with a slowed sender (a busy event loop, compressed) a worker killed
just after a commit had committed past inputs whose outputs were never produced — they are
lost, no restart reads them again. ``streams/pipeline/flush.py`` makes the flush wait; the
probe (tests/support/commit_probe.py) runs with faust's flush and with the worker's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.backends import Services
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INPUTS = 40
SEND_DELAY_S = 0.15  # longer than faust's 0.1 s patience; 40 records take 6 s to send


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


@pytest.mark.parametrize("drain", [False, True], ids=["fausts-flush", "worker-flush"])
def test_a_commit_covers_the_outputs_of_what_it_commits(
    services: Services, tmp_path: Path, drain: bool
) -> None:
    bootstrap = services.bootstrap_servers
    app_id = f"commit-probe-{uuid.uuid4().hex[:8]}"
    source, sink = f"{app_id}-in", f"{app_id}-out"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in (source, sink)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(INPUTS):
        producer.produce(source, key=str(n).encode(), value=b"x")
    assert producer.flush(30) == 0
    env = {
        **os.environ,
        "PROBE_APP_ID": app_id,
        "PROBE_BROKER": bootstrap,
        "PROBE_DATADIR": str(tmp_path / "data"),
        "PROBE_INPUT": source,
        "PROBE_OUTPUT": sink,
        "PROBE_SEND_DELAY_S": str(SEND_DELAY_S),
        "PROBE_DRAIN": "1" if drain else "0",
    }
    log = tmp_path / "probe.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.commit_probe", "worker", "-l", "warn"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while (committed := _committed(bootstrap, app_id, source)) <= 0:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no commit within 90 s\n" + log.read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # as the pod's OOM kill or a node loss
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    committed = _committed(bootstrap, app_id, source)
    produced = {int(r.value) for r in read_all(bootstrap, sink, 30)}
    lost = sorted(set(range(committed)) - produced)
    print(f"drain={drain}: committed {committed}, outputs {len(produced)}, lost {len(lost)}")
    if drain:
        assert committed > 0
        assert lost == []
    else:  # faust's own flush: the loss the worker's flush prevents (fails once faust fixes it)
        assert lost
