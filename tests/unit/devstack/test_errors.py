"""`reconciler stack` says plainly what failed and where the log is."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from streams.devstack import StackConfig, StackError
from streams.devstack.jars import ensure_jars, pinned_versions
from streams.devstack.kafka import Kafka
from streams.devstack.prometheus import Prometheus


def _cfg(tmp_path: Path, **kw: object) -> StackConfig:
    return StackConfig(state_dir=tmp_path / "state", **kw)  # type: ignore[arg-type]


def test_port_taken_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(
            StackError, match=rf"port {port} is taken.*RECONCILER_STACK_PROMETHEUS_PORT"
        ):
            Prometheus(_cfg(tmp_path, prometheus_port=port)).start()


def test_java_missing_is_reported(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        java="/nonexistent/bin/java",
        kafka_port=1,
        controller_port=2,
        kafka_metrics_port=3,
    )
    with pytest.raises(StackError, match=r"Java .* not found.*Java 17"):
        Kafka(cfg).start()


def test_refused_download_points_to_the_maven_log(tmp_path: Path) -> None:
    fake_mvn = tmp_path / "mvn"
    fake_mvn.write_text(
        "#!/bin/sh\necho 'Could not transfer artifact: status code 403' >&2\nexit 1\n"
    )
    fake_mvn.chmod(fake_mvn.stat().st_mode | stat.S_IEXEC)
    cfg = _cfg(tmp_path, mvn=str(fake_mvn))
    with pytest.raises(StackError, match="Maven could not resolve") as err:
        ensure_jars(cfg)
    assert err.value.log == cfg.logs_dir / "maven.log"
    assert "status code 403" in err.value.log.read_text()


def test_maven_missing_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"Maven .* not found"):
        ensure_jars(_cfg(tmp_path, mvn="/nonexistent/mvn"))


def test_versions_are_pinned_in_one_place() -> None:
    versions = pinned_versions()
    assert versions["kafka"].startswith("4.")
    assert versions["debezium"] == "3.6.1.Final"
