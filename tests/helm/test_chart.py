"""The Helm chart, with a real ``helm`` (lint, template under several value sets), every
rendered object validated by kubeconform against Kubernetes' and the CRDs' schemas
(ServiceMonitor, PrometheusRule, KafkaConnector), and assertions on the rendered YAML."""

from __future__ import annotations

import base64
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import tools
from tests.unit.ops.support import CHART, DASHBOARD_FILE, RULES_FILE

TOKEN = "s3cr3t-moodle-token-0123456789"
# name -> --set values; each one is linted, rendered and validated.
VALUE_SETS: dict[str, dict[str, str]] = {
    "existing-secret": {"moodle.existingSecret": "moodle-ws"},
    "token-from-values": {"moodle.token": TOKEN},
    "strimzi-connector": {
        "moodle.existingSecret": "moodle-ws",
        "connector.strimzi.enabled": "true",
        "replicas": "3",
    },
    "plain-connect-oracle": {
        "moodle.existingSecret": "moodle-ws",
        "moodle.existingSecretKey": "token",
        "connector.registrationJob.enabled": "true",
        "connector.file": "apogee-oracle.json",
    },
    "minimal": {
        "moodle.existingSecret": "moodle-ws",
        "persistence.enabled": "false",
        "networkPolicy.enabled": "false",
        "pdb.enabled": "false",
        "serviceMonitor.enabled": "false",
        "prometheusRule.enabled": "false",
        "dashboards.enabled": "false",
    },
}


def _set_args(values: dict[str, str]) -> list[str]:
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(tools.helm()), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@cache
def render(name: str) -> str:
    out = _helm(
        "template", "rel", str(CHART), "--namespace", "enrol",
        "--kube-version", tools.KUBERNETES_VERSION, *_set_args(VALUE_SETS[name]),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def objects(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(name)) if d]


def one(name: str, kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects(name) if o["kind"] == kind]
    return found


def worker_config(name: str) -> dict[str, str]:
    (found,) = [o for o in objects(name) if o["kind"] == "ConfigMap" and "MOODLE_URL" in o["data"]]
    return dict(found["data"])


def pod_specs(name: str) -> list[dict[str, Any]]:
    return [
        o["spec"]["template"]["spec"] for o in objects(name) if o["kind"] in ("StatefulSet", "Job")
    ]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict(name: str) -> None:
    out = _helm(
        "lint", "--strict", str(CHART), "--kube-version", tools.KUBERNETES_VERSION,
        *_set_args(VALUE_SETS[name]),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.fixture(scope="module")
def schema_locations() -> list[str]:
    files = set()
    for name in VALUE_SETS:
        for o in objects(name):
            group, _, version = o["apiVersion"].rpartition("/")
            # kubeconform's file name: <kind>[-<first part of the group>]-<version>.json
            suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
            files.add(f"{o['kind'].lower()}{suffix}.json")
    core = tools.kubernetes_schemas(files)
    crds = tools.crd_schemas()
    return [
        f"{core}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        f"{crds}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
    ]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_rendered_object_is_schema_valid(name: str, schema_locations: list[str]) -> None:
    argv = [str(tools.kubeconform()), "-strict", "-summary", "-output", "json"]
    for location in schema_locations:
        argv += ["-schema-location", location]
    argv += ["-kubernetes-version", tools.KUBERNETES_VERSION, "-"]
    out = subprocess.run(
        argv, input=render(name), capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(out.stdout)
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert out.returncode == 0 and problems == [], problems or out.stderr
    summary = report["summary"]
    assert summary["valid"] == len(objects(name)) and summary["skipped"] == 0, summary


def test_kubeconform_rejects_what_the_api_server_would(schema_locations: list[str]) -> None:
    """The schemas are strict: a misspelt field in the pod spec and in a CRD are errors."""
    bad = render("strimzi-connector").replace("readOnlyRootFilesystem", "readOnlyRootFileSystem")
    bad = bad.replace("tasksMax:", "taskMax:")
    argv = [str(tools.kubeconform()), "-strict", "-output", "json"]
    for location in schema_locations:
        argv += ["-schema-location", location]
    out = subprocess.run(
        [*argv, "-"], input=bad, capture_output=True, text=True, timeout=120, check=False
    )
    invalid = {
        r["kind"] for r in json.loads(out.stdout)["resources"] if r["status"] != "statusValid"
    }
    assert invalid == {"StatefulSet", "KafkaConnector"}


def test_the_values_schema_rejects_bad_values() -> None:
    for values in (
        {"moodle.existingSecret": "m", "replicas": "-1"},
        {"moodle.existingSecret": "m", "moodle.settings.MOODLE_TOKEN": "inline"},
        {"moodle.existingSecret": "m", "connector.strimzi.state": "sleeping"},
    ):
        out = _helm("template", "rel", str(CHART), "--kube-version", "1.31.0", *_set_args(values))
        assert out.returncode != 0 and "schema" in out.stderr, values
    out = _helm("template", "rel", str(CHART), "--kube-version", "1.31.0")
    assert out.returncode != 0 and "existingSecret" in out.stderr  # no token, no install


@pytest.mark.parametrize("name", VALUE_SETS)
def test_containers_run_non_root_read_only_without_capabilities(name: str) -> None:
    for spec in pod_specs(name):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["privileged"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["limits"]["memory"]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts


def test_probes_match_faust_recovery() -> None:
    (container,) = one("existing-secret", "StatefulSet")["spec"]["template"]["spec"]["containers"]
    startup, live, ready = (
        container[p] for p in ("startupProbe", "livenessProbe", "readinessProbe")
    )
    assert startup["httpGet"]["path"] == "/readyz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800  # 30 min of recovery
    assert live["httpGet"]["path"] == "/livez"  # cheap: the event loop answers
    assert ready["httpGet"]["path"] == "/readyz"  # recovered and assigned
    assert live["periodSeconds"] * live["failureThreshold"] >= 60


def test_statefulset_keeps_rocksdb_on_a_volume_with_stable_identities() -> None:
    sts = one("existing-secret", "StatefulSet")["spec"]
    assert sts["serviceName"].endswith("-headless")
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    (container,) = sts["template"]["spec"]["containers"]
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    config = worker_config("existing-secret")
    assert config["RECONCILER_STORE"] == "rocksdb" and config["RECONCILER_DATA_DIR"] == "/data"
    minimal = one("minimal", "StatefulSet")["spec"]
    assert "volumeClaimTemplates" not in minimal
    assert {"name": "data", "emptyDir": {}} in minimal["template"]["spec"]["volumes"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_moodle_token_is_never_inlined(name: str) -> None:
    text = render(name)
    assert TOKEN not in text
    assert "MOODLE_TOKEN" not in text
    secrets = [o for o in objects(name) if o["kind"] == "Secret"]
    sts = one(name, "StatefulSet")["spec"]["template"]["spec"]
    (volume,) = [v for v in sts["volumes"] if v["name"] == "moodle-token"]
    assert volume["secret"]["items"][0]["path"] == "moodle_token"
    (container,) = sts["containers"]
    assert {"name": "moodle-token", "mountPath": "/run/secrets/moodle", "readOnly": True} in (
        container["volumeMounts"]
    )
    assert worker_config(name)["MOODLE_SECRETS_DIR"] == "/run/secrets/moodle"
    if "moodle.token" in VALUE_SETS[name]:
        (secret,) = secrets
        assert base64.b64decode(secret["data"]["moodle_token"]).decode() == TOKEN
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    else:
        assert secrets == []
        assert volume["secret"]["secretName"] == "moodle-ws"


def test_prometheus_rule_embeds_the_tested_rules_file_verbatim() -> None:
    rule = one("existing-secret", "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    assert "{{ $labels.topic }}" in render("existing-secret")


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar() -> None:
    maps = [o for o in objects("existing-secret") if o["kind"] == "ConfigMap"]
    (dash,) = [m for m in maps if "reconciler.json" in m.get("data", {})]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["reconciler.json"]) == json.loads(DASHBOARD_FILE.read_text())


def test_service_monitor_scrapes_metrics_as_job_reconciler() -> None:
    monitor = one("existing-secret", "ServiceMonitor")["spec"]
    assert monitor["jobLabel"] == "app.kubernetes.io/name"
    service = next(o for o in objects("existing-secret") if o["kind"] == "Service")
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "reconciler"
    assert [e["path"] for e in monitor["endpoints"]] == ["/metrics", "/metrics/faust"]
    assert service["spec"]["publishNotReadyAddresses"] is True  # scraped while recovering


def test_network_policy_allows_kafka_moodle_dns_out_and_metrics_in() -> None:
    policy = one("existing-secret", "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (9093, "TCP"), (443, "TCP")}
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_pdb_allows_one_disruption_at_a_time() -> None:
    assert one("existing-secret", "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_kafka_connector_is_rendered_from_the_connector_file() -> None:
    source = json.loads((tools.ROOT / "connectors" / "apogee-postgres.json").read_text())
    connector = one("strimzi-connector", "KafkaConnector")
    assert connector["apiVersion"] == "kafka.strimzi.io/v1"
    assert connector["metadata"]["name"] == source["name"]
    assert connector["metadata"]["labels"]["strimzi.io/cluster"] == "apogee-connect"
    spec = connector["spec"]
    assert spec["class"] == source["config"]["connector.class"]
    assert spec["tasksMax"] == int(source["config"]["tasks.max"])
    expected = {
        k: v for k, v in source["config"].items() if k not in ("connector.class", "tasks.max")
    }
    assert spec["config"] == expected
    metrics = [o for o in objects("strimzi-connector") if o["kind"] == "ConfigMap"]
    rules = [m["data"]["metrics-config.yml"] for m in metrics if "metrics-config.yml" in m["data"]]
    assert rules == [(tools.ROOT / "connectors" / "metrics" / "kafka-connect.yaml").read_text()]


def test_registration_job_puts_the_connector_file_to_connect() -> None:
    source = (tools.ROOT / "connectors" / "apogee-oracle.json").read_text()
    maps = [o for o in objects("plain-connect-oracle") if o["kind"] == "ConfigMap"]
    (config,) = [m for m in maps if "connector.json" in m["data"]]
    assert json.loads(config["data"]["connector.json"]) == json.loads(source)
    job = one("plain-connect-oracle", "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == [
        "connector-register",
        "--connect-url",
        "http://connect.kafka.svc:8083",
    ]
    assert "post-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert not [o for o in objects("plain-connect-oracle") if o["kind"] == "KafkaConnector"]


def test_chart_files_link_to_the_single_sources() -> None:
    for link, target in (
        ("files/connectors/apogee-postgres.json", "connectors/apogee-postgres.json"),
        ("files/connectors/apogee-oracle.json", "connectors/apogee-oracle.json"),
        ("files/metrics/kafka-connect.yaml", "connectors/metrics/kafka-connect.yaml"),
    ):
        path = CHART / link
        assert path.is_symlink() and path.resolve() == (tools.ROOT / target).resolve()


def test_image_definition_installs_from_the_lock_as_non_root() -> None:
    dockerfile = (tools.ROOT / "Dockerfile").read_text()
    assert "uv sync --locked --no-dev" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "COPY pyproject.toml uv.lock" in dockerfile
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["containerSecurityContext"]["runAsUser"] == 10001


def test_chart_version_files(tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "reconciler"
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"]), set(values) - set(schema["properties"])
