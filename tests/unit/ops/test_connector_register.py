"""``reconciler connector-register`` (the chart's registration Job) against a fake Connect."""

from __future__ import annotations

import json
from pathlib import Path

import click
import httpx
import pytest

from streams.ops.connector import register, wait_running
from tests.unit.ops.support import ROOT

CONNECTOR = ROOT / "connectors" / "apogee-postgres.json"


def _connect(states: list[dict[str, object]], put_status: int = 201) -> tuple[httpx.Client, list]:
    seen: list[httpx.Request] = []
    answers = iter(states)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "PUT":
            return httpx.Response(put_status, json={"error_code": put_status})
        return httpx.Response(200, json=next(answers))

    client = httpx.Client(base_url="http://connect:8083", transport=httpx.MockTransport(handle))
    return client, seen


def _status(connector: str, *tasks: str) -> dict[str, object]:
    return {
        "connector": {"state": connector},
        "tasks": [{"id": n, "state": s, "trace": "boom" if s == "FAILED" else ""}
                  for n, s in enumerate(tasks)],
    }  # fmt: skip


def test_puts_the_config_of_the_file_and_waits_until_it_runs() -> None:
    http, seen = _connect(
        [_status("UNASSIGNED"), _status("RUNNING"), _status("RUNNING", "RUNNING")]
    )
    assert register(http, CONNECTOR) == "apogee-postgres"
    assert wait_running(http, "apogee-postgres", 5, every_s=0) == ""
    put = seen[0]
    assert (put.method, put.url.path) == ("PUT", "/connectors/apogee-postgres/config")
    assert json.loads(put.content) == json.loads(CONNECTOR.read_text())["config"]


def test_a_failed_task_stops_with_its_trace() -> None:
    http, _ = _connect([_status("RUNNING", "FAILED")])
    with pytest.raises(click.ClickException, match=r"(?s)FAILED.*boom"):
        wait_running(http, "apogee-postgres", 5, every_s=0)


def test_a_refused_config_is_an_error(tmp_path: Path) -> None:
    http, _ = _connect([], put_status=400)
    with pytest.raises(click.ClickException, match="HTTP 400"):
        register(http, CONNECTOR)


def test_not_running_before_the_deadline_returns_the_last_state() -> None:
    http, _ = _connect([_status("UNASSIGNED")] * 1000)
    assert "UNASSIGNED" in wait_running(http, "apogee-postgres", 0.05, every_s=0.01)
