"""The reconciler's Grafana dashboard, as code (grafana-foundation-sdk, Grafana 11 models).

Exported to ``helm/reconciler/files/dashboards/reconciler.json`` (the chart ships it in a
ConfigMap for Grafana's sidecar) with ``python -m streams.ops.dashboard``; ``--check`` fails
when the committed file is not what this module builds (as ``schemas/export.py`` does)::

    python -m streams.ops.dashboard           # write the JSON
    python -m streams.ops.dashboard --check   # exit 1 if it is stale

Every query names its data source ``${datasource}`` (a dashboard variable of type
prometheus), never a fixed uid, and the dashboard's own uid is stable, so links survive a
re-import. Rows: freshness, Kafka, Moodle, exceptions (dead letters, parked, guard, drift),
source (Debezium / Kafka Connect), worker.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = [
    "DASHBOARD_FILE",
    "PANELS",
    "UID",
    "Query",
    "Spec",
    "build",
    "export",
    "queries",
    "render",
]

UID = "apogee-moodle-reconciler"
DASHBOARD_FILE = (
    Path(__file__).resolve().parents[2] / "helm/reconciler/files/dashboards/reconciler.json"
)
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Spec:
    """One panel: a title, what it shows, and the unit of its values."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 8
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def _quantile(q: float, change: str) -> Query:
    return _q(
        f"histogram_quantile({q}, sum by (le) "
        f'(rate(reconciler_commit_to_applied_seconds_bucket{{change="{change}"}}[{RATE}])))',
        f"p{round(q * 100)} {change}",
    )


PANELS: dict[str, tuple[Spec, ...]] = {
    "Freshness": (
        Spec(
            "Time since the last apply",
            (_q("time() - max(reconciler_last_apply_timestamp_seconds > 0)", "since last apply"),),
            unit="s",
            kind="stat",
            description="Seconds since a Moodle write last succeeded (any worker).",
        ),
        Spec(
            "Commit → applied latency (additions)",
            (_quantile(0.5, "add"), _quantile(0.95, "add"), _quantile(0.99, "add")),
            unit="s",
            width=10,
            description="From the APOGÉE commit to the Moodle call that applied it. "
            "Objective: p95 under 5 minutes (alert ReconcilerApplyLatencyHigh).",
        ),
        Spec(
            "Commit → applied latency (removals)",
            (_quantile(0.5, "remove"), _quantile(0.95, "remove")),
            unit="s",
            width=6,
            description="Removals wait out the grace window on purpose (default 1 h).",
        ),
    ),
    "Kafka": (
        Spec(
            "Consumer lag by topic",
            (_q("sum by (topic) (reconciler_consumer_lag_messages)", "{{topic}}"),),
            unit="short",
            description="High watermark minus the group's committed offset, summed over workers.",
        ),
        Spec(
            "Throughput in",
            (
                _q(
                    "sum by (topic) (rate(kafka_server_brokertopicmetrics_messagesinpersec_total"
                    f'{{topic=~"apogee[.].*"}}[{RATE}]))',
                    "into {{topic}}",
                ),
                _q(
                    f"sum by (table, outcome) (rate(reconciler_cdc_events_total[{RATE}]))",
                    "read {{table}} {{outcome}}",
                ),
            ),
            unit="reqps",
            description="CDC records Debezium writes to Kafka, and those the worker reads.",
        ),
        Spec(
            "Throughput out: enrolment changes",
            (
                _q(
                    f"sum by (kind, outcome) (rate(reconciler_enrolment_changes_total[{RATE}]))",
                    "{{kind}} {{outcome}}",
                ),
            ),
            unit="reqps",
        ),
    ),
    "Moodle": (
        Spec(
            "Moodle calls by outcome",
            (
                _q(
                    f"sum by (outcome) (rate(reconciler_moodle_calls_total[{RATE}]))",
                    "{{outcome}}",
                ),
            ),
            unit="reqps",
            width=6,
        ),
        Spec(
            "Moodle error ratio",
            (
                _q(
                    f'sum(rate(reconciler_moodle_calls_total{{outcome!="ok"}}[{RATE}])) '
                    f"/ sum(rate(reconciler_moodle_calls_total[{RATE}]))",
                    "errors / calls",
                ),
            ),
            unit="percentunit",
            width=6,
            description="Alert ReconcilerMoodleErrorRatioHigh above 5 % for 10 minutes.",
        ),
        Spec(
            "Moodle call duration p95",
            (
                _q(
                    "histogram_quantile(0.95, sum by (le, function) "
                    f"(rate(reconciler_moodle_call_duration_seconds_bucket[{RATE}])))",
                    "{{function}}",
                ),
            ),
            unit="s",
            width=6,
        ),
        Spec(
            "Pacing and concurrency",
            (
                _q("max(reconciler_moodle_pacing_rate_per_second)", "calls/s allowed"),
                _q("max(reconciler_moodle_concurrency_limit)", "calls in flight allowed"),
            ),
            width=6,
            description="The client's adaptive rate and limit: they drop when Moodle slows down.",
        ),
    ),
    "Exceptions": (
        Spec(
            "Dead letters (1 h)",
            (
                _q(
                    "sum by (reason) (increase(reconciler_dead_letters_total[1h]))",
                    "{{reason}}",
                ),
            ),
            width=6,
        ),
        Spec(
            "Parked by reason",
            (_q("sum by (reason) (reconciler_parked)", "{{reason}}"),),
            width=6,
        ),
        Spec(
            "Guard holds and pending courses",
            (
                _q("sum(reconciler_held_removals)", "removals held"),
                _q("sum(reconciler_pending_courses)", "courses pending"),
                _q("sum(reconciler_in_flight_courses)", "courses in flight"),
            ),
            width=6,
            description="Held removals wait for `reconciler approve` or `reconciler reject`.",
        ),
        Spec(
            "Drift found",
            (_q("sum by (kind) (reconciler_drift_enrolments)", "{{kind}}"),),
            width=6,
            description="Enrolments where Moodle differs from the ledger at the last drift check.",
        ),
    ),
    "Source: Debezium and Kafka Connect": (
        Spec(
            "Connector and task state",
            (
                _q(
                    "sum by (connector, status) (kafka_connect_connector_status)",
                    "{{connector}} {{status}}",
                ),
                _q(
                    "sum by (connector, status) (kafka_connect_connector_task_status)",
                    "{{connector}} tasks {{status}}",
                ),
            ),
            kind="stat",
            width=6,
        ),
        Spec(
            "Behind the database",
            (
                _q(
                    "max by (name) "
                    '(debezium_metrics_MilliSecondsBehindSource{context="streaming"})',
                    "{{name}} behind source",
                ),
                _q(
                    "max by (name) "
                    '(debezium_metrics_MilliSecondsSinceLastEvent{context="streaming"})',
                    "{{name}} since last event",
                ),
            ),
            unit="ms",
            width=6,
            description="Debezium's own figures (milliseconds); -1 until the first event.",
        ),
        Spec(
            "Debezium queue remaining capacity",
            (
                _q(
                    'min by (name) (debezium_metrics_QueueRemainingCapacity{context="streaming"})',
                    "{{name}} remaining",
                ),
                _q(
                    'max by (name) (debezium_metrics_QueueTotalCapacity{context="streaming"})',
                    "{{name}} total",
                ),
            ),
            width=6,
        ),
        Spec(
            "Snapshot progress",
            (
                _q("max by (name) (debezium_metrics_SnapshotCompleted)", "{{name}} completed"),
                _q("max by (name) (debezium_metrics_SnapshotRunning)", "{{name}} running"),
                _q(
                    "max by (name) (debezium_metrics_RemainingTableCount)",
                    "{{name}} tables left",
                ),
                # (RowsScanned per table exists only while Connect has run a snapshot)
                _q("max by (name) (debezium_metrics_TotalTableCount)", "{{name}} tables"),
            ),
            kind="stat",
            width=6,
        ),
    ),
    "Worker": (
        Spec(
            "Workers up",
            (_q('sum(up{job="reconciler"})', "workers up"),),
            kind="stat",
            width=6,
        ),
        Spec(
            "Build",
            (
                _q(
                    "count by (version, revision, store, shadow) (reconciler_build_info)",
                    "{{version}} {{revision}} {{store}} shadow={{shadow}}",
                ),
            ),
            kind="stat",
            width=6,
        ),
        Spec(
            "Shadow mode",
            (
                _q("max(reconciler_shadow_mode)", "shadow (1: no Moodle write)"),
                _q(
                    'sum(increase(reconciler_enrolment_changes_total{outcome="shadow"}[1h]))',
                    "would-be changes (1 h)",
                ),
            ),
            kind="stat",
            width=6,
            description="In shadow mode the worker plans and reads Moodle but never writes: "
            "what it would have sent is on the shadow topic (`reconciler shadow-report`).",
        ),
        Spec(
            "faust: records received and rebalances",
            (
                _q(f"sum(rate(faust_messages_received_total[{RATE}]))", "records/s"),
                _q("max(faust_total_rebalances)", "rebalances"),
            ),
            width=6,
            description="faust's own sensor (/metrics/faust, its latencies in milliseconds).",
        ),
    ),
}


def _panel(spec: Spec) -> Any:
    panel: Any = timeseries.Panel() if spec.kind == "timeseries" else stat.Panel()
    panel = (
        panel.title(spec.title).datasource(DATASOURCE).unit(spec.unit).height(8).span(spec.width)
    )
    if spec.description:
        panel = panel.description(spec.description)
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        target = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
        if query.legend:
            target = target.legend_format(query.legend)
        panel = panel.with_target(target)
    return panel


def build(panels: dict[str, tuple[Spec, ...]] = PANELS) -> Any:
    """The dashboard model (grafana_foundation_sdk.models.dashboard.Dashboard)."""
    builder = (
        gd.Dashboard("APOGÉE → Moodle reconciler")
        .uid(UID)
        .tags(["reconciler", "apogee", "moodle"])
        .description("Freshness, lag, throughput, Moodle, exceptions and the CDC source.")
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .editable()
        .with_variable(gd.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for row, specs in panels.items():
        builder = builder.with_row(gd.Row(row))
        for spec in specs:
            builder = builder.with_panel(_panel(spec))
    return builder.build()


def render() -> str:
    """The dashboard as JSON text, ids numbered in order (stable output)."""
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(build()))
    for number, panel in enumerate(data["panels"], start=1):
        panel["id"] = number
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def queries(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of an exported dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in data["panels"]
        for target in panel.get("targets", [])
    ]


def export(path: Path = DASHBOARD_FILE, check: bool = False) -> bool:
    """Write the JSON (or, with ``check``, compare); True when the file is current."""
    text = render()
    current = path.exists() and path.read_text() == text
    if not check and not current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return current


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    check = "--check" in argv
    current = export(check=check)
    if check and not current:
        print(f"{DASHBOARD_FILE} is stale: run python -m streams.ops.dashboard", file=sys.stderr)
        return 1
    print(f"{DASHBOARD_FILE}: {'current' if current else 'written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
