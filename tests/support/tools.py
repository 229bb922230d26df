"""Real tools for the chart tests, built or generated once and cached under the state dir.

* ``helm`` and ``kubeconform`` built from their Go modules (``go install`` through the Go
  module proxy) into ``<state>/tools/bin``; a version stamp makes a second run build nothing.
* JSON schemas for kubeconform, no network at validation time:
  - Kubernetes kinds from the ``kubernetes-validate`` package's bundled schemas (its
    ``_definitions.json`` references inlined so each file stands alone);
  - CRDs generated from the CRD YAMLs those projects publish: prometheus-operator's Go module
    (``example/prometheus-operator-crd/``), and Strimzi's ``KafkaConnector`` produced by
    Strimzi's own CRD generator from its published API jar (Maven Central, Java 21+).

Anything that cannot be obtained makes the calling test skip, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.devstack import StackConfig

ROOT = Path(__file__).resolve().parents[2]
HELM = ("helm.sh/helm/v3/cmd/helm", "v3.22.0")
KUBECONFORM = ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0")
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
KUBERNETES_VERSION = "1.31.0"
STRIMZI_POM = ROOT / "tests" / "helm" / "strimzi" / "pom.xml"
MAVEN_SETTINGS = ROOT / "connectors" / "maven" / "settings.xml"


def tools_dir() -> Path:
    path = StackConfig().state_dir / "tools"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(argv: list[str], timeout_s: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, **kwargs
    )


def go_binary(package: str, version: str) -> Path:
    """``go install package@version`` into the cache once; skip if Go is missing or fails."""
    name = package.rsplit("/", 1)[-1]
    bin_dir = tools_dir() / "bin"
    binary, stamp = bin_dir / name, bin_dir / f"{name}.version"
    if binary.exists() and stamp.exists() and stamp.read_text() == version:
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.skip(f"{name}: no Go toolchain on PATH to build {package}@{version}")
    env = {**os.environ, "GOBIN": str(bin_dir), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    out = _run([go, "install", f"{package}@{version}"], 1200, env=env, cwd=tools_dir())
    if out.returncode != 0:
        pytest.skip(f"{name}: go install {package}@{version} failed: {out.stderr[-800:]}")
    stamp.write_text(version)
    return binary


def helm() -> Path:
    return go_binary(*HELM)


def kubeconform() -> Path:
    return go_binary(*KUBECONFORM)


# -- Kubernetes schemas ------------------------------------------------------------------------
def _k8s_source() -> Path:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    source = base / f"v{KUBERNETES_VERSION}-local-strict"
    if not source.is_dir():
        pytest.skip(f"kubernetes-validate has no schemas for {KUBERNETES_VERSION} ({base})")
    return source


def _standalone(schema: Any, defs: dict[str, Any]) -> Any:
    """``/api/_definitions.json#/$defs/X`` references made local (``#/$defs/X``)."""
    text = json.dumps(schema).replace('"/api/_definitions.json#/', '"#/')
    result = json.loads(text)
    result["$defs"] = defs
    return result


def kubernetes_schemas(files: set[str]) -> Path:
    """``<kind>-<group>-<version>.json`` standalone strict schemas (kubeconform's layout)."""
    out = tools_dir() / "schemas" / f"v{KUBERNETES_VERSION}"
    out.mkdir(parents=True, exist_ok=True)
    missing = [f for f in files if not (out / f).exists()]
    if missing:
        source = _k8s_source()
        defs_text = (
            (source / "_definitions.json").read_text().replace('"/api/_definitions.json#/', '"#/')
        )
        defs = json.loads(defs_text)["$defs"]
        for name in missing:
            if not (source / name).exists():
                continue  # kubeconform then reports the kind as lacking a schema
            schema = json.loads((source / name).read_text())
            (out / name).write_text(json.dumps(_standalone(schema, defs)))
    return out


# -- CRD schemas -----------------------------------------------------------------------------
def _strict(node: Any) -> Any:
    """openAPIV3Schema → JSON Schema, rejecting unknown fields as the API server prunes them."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _strict(v) for k, v in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in node if k.startswith("x-kubernetes-")]:
        node.pop(key)
    if "properties" in node and "additionalProperties" not in node and not preserve:
        node["additionalProperties"] = False
    return node


def crd_to_schemas(crd_yaml: str, out: Path) -> list[Path]:
    """One ``<group>/<kind>_<version>.json`` per served version of each CRD in the text."""
    written = []
    for crd in yaml.safe_load_all(crd_yaml):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        kind = spec["names"]["kind"].lower()
        for version in spec["versions"]:
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if not schema or not version.get("served", True):
                continue
            path = out / spec["group"] / f"{kind}_{version['name']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            strict = _strict(schema)
            strict["properties"]["metadata"] = {"type": "object"}
            path.write_text(json.dumps(strict))
            written.append(path)
    return written


def prometheus_operator_crds(out: Path) -> list[Path]:
    """ServiceMonitor and PrometheusRule schemas from prometheus-operator's Go module."""
    module, version = PROMETHEUS_OPERATOR
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain to download the prometheus-operator module (its CRDs)")
    got = _run([go, "mod", "download", "-json", f"{module}@{version}"], 900, cwd=tools_dir())
    if got.returncode != 0:
        pytest.skip(f"go mod download {module}@{version} failed: {got.stdout[-500:]}")
    crds = Path(json.loads(got.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    written = []
    for name in ("servicemonitors", "prometheusrules"):
        text = (crds / f"monitoring.coreos.com_{name}.yaml").read_text()
        written += crd_to_schemas(text, out)
    return written


def java21() -> str | None:
    """A Java 21+ launcher (Strimzi's generator is built for 21): JAVA_HOME, PATH, /usr/lib/jvm."""
    candidates = [os.environ.get("JAVA_HOME", "") + "/bin/java", shutil.which("java") or ""]
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java"))
    for java in candidates:
        if not java or not Path(java).exists():
            continue
        out = _run([java, "-version"], 30)
        found = re.search(r'version "(\d+)', out.stderr)
        if found and int(found.group(1)) >= 21:
            return java
    return None


def strimzi_crds(out: Path) -> list[Path]:
    """The KafkaConnector CRD generated by Strimzi's CRD generator from its API model."""
    cache = tools_dir() / "strimzi"
    crd = cache / "kafkaconnector.yaml"
    stamp = cache / ".pom"
    if not (crd.exists() and stamp.exists() and stamp.read_text() == STRIMZI_POM.read_text()):
        mvn, java = shutil.which("mvn"), java21()
        if mvn is None:
            pytest.skip("Strimzi CRDs: Maven not on PATH (./dev setup installs it)")
        if java is None:
            pytest.skip("Strimzi CRDs: Strimzi's CRD generator needs Java 21+, none found")
        jars = cache / "jars"
        shutil.rmtree(jars, ignore_errors=True)
        argv = [
            mvn, "-q", "-B", "-s", str(MAVEN_SETTINGS), "-f", str(STRIMZI_POM),
            "dependency:copy-dependencies", f"-DoutputDirectory={jars}",
        ]  # fmt: skip
        got = _run(argv, 900)
        if got.returncode != 0:
            pytest.skip(f"Strimzi API jars not resolved from Maven Central: {got.stdout[-500:]}")
        generator = "io.strimzi.crdgenerator.CrdGenerator"
        model = "io.strimzi.api.kafka.model.connector.KafkaConnector"
        got = _run([java, "-cp", f"{jars}/*", generator, "--yaml", f"{model}={crd}"], 300)
        if got.returncode != 0 or not crd.exists():
            pytest.skip(f"Strimzi CRD generator failed: {(got.stdout + got.stderr)[-800:]}")
        stamp.write_text(STRIMZI_POM.read_text())
    return crd_to_schemas(crd.read_text(), out)


def crd_schemas() -> Path:
    out = tools_dir() / "schemas" / "crds"
    prometheus_operator_crds(out)
    strimzi_crds(out)
    return out
