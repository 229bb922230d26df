"""The alert rules: promtool accepts them, its unit tests pass and would catch a broken rule,
every alert is tested firing and silent, and carries its summary, severity and runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.ops.promql import metric_names
from tests.unit.ops.support import README, RULES_FILE, alerts, registry_names

TESTS_FILE = Path(__file__).with_name("reconciler.rules.test.yaml")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian package 'prometheus'; ./dev setup)"
)


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    argv = [PROMTOOL, *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@needs_promtool
def test_promtool_check_rules_accepts_the_file() -> None:
    out = _promtool("check", "rules", RULES_FILE)
    assert out.returncode == 0, out.stdout + out.stderr
    count = len([r for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]])
    assert f"SUCCESS: {count} rules found" in out.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    out = _promtool("test", "rules", TESTS_FILE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = yaml.safe_load(TESTS_FILE.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert len(names) >= 10
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"


@needs_promtool
@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_the_unit_tests_catch_a_rule_that_never_fires(alert: str, tmp_path: Path) -> None:
    """Each alert's expression replaced by one that never fires must fail promtool's tests
    (the firing case is real, not vacuous)."""
    doc = yaml.safe_load(RULES_FILE.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) > 2"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(doc, allow_unicode=True))
    tests = yaml.safe_load(TESTS_FILE.read_text())
    tests["rule_files"] = [str(rules)]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, allow_unicode=True))
    out = _promtool("test", "rules", tmp_path / "tests.yaml")
    assert out.returncode != 0
    assert f"alertname: {alert}" in out.stdout + out.stderr


def test_every_alert_has_summary_severity_and_a_runbook_section() -> None:
    headings = {_anchor(h) for h in re.findall(r"^#{2,4} (.+)$", README.read_text(), re.M)}
    for rule in alerts():
        annotations: dict[str, Any] = rule["annotations"]
        assert annotations.get("summary"), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        url = annotations["runbook_url"]
        assert url.endswith("README.md#" + rule["alert"].lower()), url
        assert rule["alert"].lower() in headings, f"README has no section for {rule['alert']}"


def test_the_worker_metrics_named_by_the_rules_exist() -> None:
    """Every ``reconciler_*`` series a rule reads is one the worker's registry exposes."""
    used = {n for r in alerts(recording=True) for n in metric_names(r["expr"])}
    ours = {n for n in used if n.startswith("reconciler_")}
    assert ours, used
    assert ours - registry_names() == set()


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")
