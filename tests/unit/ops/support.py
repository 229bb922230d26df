"""Paths and readers shared by the operations tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from streams import metrics

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
CHART = ROOT / "helm" / "reconciler"
RULES_FILE = CHART / "files" / "rules" / "reconciler.rules.yaml"
DASHBOARD_FILE = CHART / "files" / "dashboards" / "reconciler.json"


@cache
def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alerts(recording: bool = False) -> list[dict[str, Any]]:
    """The alerting rules (and the recording ones with ``recording``)."""
    return [r for r in _rules() if recording or "alert" in r]


def registry_names() -> set[str]:
    """Every sample name the worker's registry can expose (``_bucket``, ``_total``, ``_info``…)."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
        if family.type == "counter":
            names.add(family.name + "_total")
    return names
