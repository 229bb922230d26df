"""The dashboard: the committed JSON is what the code builds, and it is a valid Grafana 11
dashboard for the model grafana-foundation-sdk targets (no Grafana server runs here)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from streams.ops import dashboard
from streams.ops.promql import metric_names
from tests.unit.ops.support import DASHBOARD_FILE, registry_names


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text()))


def test_the_committed_json_is_current() -> None:
    assert dashboard.DASHBOARD_FILE == DASHBOARD_FILE
    assert dashboard.export(check=True), "stale: run python -m streams.ops.dashboard"


def test_check_notices_a_hand_edit(tmp_path: Any) -> None:
    copy = tmp_path / "reconciler.json"
    copy.write_text(DASHBOARD_FILE.read_text().replace("Moodle error ratio", "edited"))
    assert not dashboard.export(copy, check=True)
    assert dashboard.export(copy) is False and dashboard.export(copy, check=True)


def test_stable_uid_and_a_datasource_variable(data: dict[str, Any]) -> None:
    assert data["uid"] == "apogee-moodle-reconciler"
    (variable,) = data["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for panel in data["panels"]:
        if panel["type"] == "row":
            continue
        refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
        assert all(r == {"type": "prometheus", "uid": "${datasource}"} for r in refs), panel


def _subset(small: Any, big: Any, path: str = "") -> list[str]:
    """Where ``small`` has something ``big`` lacks or holds differently."""
    if isinstance(small, dict) and isinstance(big, dict):
        return [p for k, v in small.items() for p in _subset(v, big.get(k), f"{path}.{k}")]
    if isinstance(small, list) and isinstance(big, list) and len(small) == len(big):
        return [p for i, (a, b) in enumerate(zip(small, big, strict=True)) for p in _subset(a, b)]
    return [] if small == big else [path or "."]


def test_the_json_decodes_into_the_sdk_models_without_losing_anything(
    data: dict[str, Any],
) -> None:
    """grafana-foundation-sdk's models are generated from Grafana's dashboard schema: a field
    they do not know, or a value of the wrong shape, is dropped or changed on the way back."""
    plugins.register_default_plugins()
    back = json.loads(JSONEncoder().encode(Dashboard.from_json(data)))
    assert _subset(data, back) == []
    broken = {**data, "panels": [{**data["panels"][1], "gridPosition": {"x": 0}}]}
    again = json.loads(JSONEncoder().encode(Dashboard.from_json(broken)))
    assert _subset(broken, again) != []  # the check above would notice an unknown field


def test_grafana_11_layout_and_panel_types(data: dict[str, Any]) -> None:
    assert data["schemaVersion"] >= 39  # Grafana 11.0's dashboard schema version
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in data["panels"]:
        assert panel["type"] in {"row", "timeseries", "stat"}
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_it_shows_what_ops_asked_for(data: dict[str, Any]) -> None:
    text = json.dumps(data)
    for needle in (
        "reconciler_commit_to_applied_seconds_bucket",  # freshness: latency quantiles
        "reconciler_last_apply_timestamp_seconds",  # freshness: time since last apply
        "reconciler_consumer_lag_messages",  # lag
        "kafka_server_brokertopicmetrics_messagesinpersec_total",  # throughput in
        "reconciler_enrolment_changes_total",  # throughput out
        "reconciler_moodle_calls_total",  # Moodle errors
        "reconciler_moodle_call_duration_seconds_bucket",  # Moodle latency
        "reconciler_moodle_pacing_rate_per_second",  # pacing
        "reconciler_dead_letters_total",
        "reconciler_parked",
        "reconciler_held_removals",  # guard holds
        "reconciler_drift_enrolments",
        "kafka_connect_connector_status",  # Connect health
        "debezium_metrics_MilliSecondsBehindSource",
        "debezium_metrics_QueueRemainingCapacity",
        "debezium_metrics_SnapshotCompleted",
    ):
        assert needle in text, needle


def test_the_worker_metrics_named_by_the_dashboard_exist(data: dict[str, Any]) -> None:
    used = {n for _, expr in dashboard.queries(data) for n in metric_names(expr)}
    ours = {n for n in used if n.startswith("reconciler_")}
    assert len(ours) >= 12
    assert ours - registry_names() == set()
