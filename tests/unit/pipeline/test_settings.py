"""A bad deploy fails at start, with a line naming each bad setting as the operator sets it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams.pipeline.settings import WorkerSettings
from streams.pipeline.worker import command


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"RECONCILER_GRACE_S": "-1"},
            "RECONCILER_GRACE_S: Input should be greater than or equal to 0",
        ),
        (
            {"RECONCILER_COURSE_TEMPLATE": "{cod_elp}"},
            "RECONCILER_COURSE_TEMPLATE: Value error, '{cod_elp}' must contain {cod_anu}",
        ),
        ({"RECONCILER_STORE": "sqlite"}, "RECONCILER_STORE: Input should be 'rocksdb' or 'memory'"),
        (
            {"RECONCILER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "needs RECONCILER_KAFKA_SASL_MECHANISM",
        ),
        ({"MOODLE_URL": ""}, "MOODLE_URL: "),
    ],
)
def test_invalid_settings_stop_the_worker_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    monkeypatch.setenv("MOODLE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("MOODLE_TOKEN", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("RECONCILER_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 2, result.output
    assert "invalid configuration" in result.output and expected in result.output


def test_policies_follow_the_settings() -> None:
    settings = WorkerSettings(
        grace_s=90, guard_course_max_count=5, removal="unenrol", paid_states=frozenset({"P"})
    )
    policy = settings.plan_policy()
    assert policy.grace.total_seconds() == 90 and policy.guard.course_max_count == 5
    assert policy.removal.value == "unenrol"
    assert settings.fold_policy().paid_states == frozenset({"P"})
