"""Kafka Connect (distributed mode, REST on loopback) with the Debezium plugins.

Connector configs are the REST-form files in ``connectors/`` (``{"name", "config"}``);
secrets and addresses in them are ``${env:…}`` references resolved by Kafka's
EnvVarConfigProvider, so the same files serve the dev stack and Kubernetes.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx

from streams.devstack.config import CONNECTORS_DIR, StackConfig
from streams.devstack.errors import StackError
from streams.devstack.jars import jmx_agent, kafka_classpath, plugin_path
from streams.devstack.kafka import java_available, log4j2_config
from streams.devstack.process import Managed, http_ok, port_open, tail, wait_for

POSTGRES_CONNECTOR = CONNECTORS_DIR / "apogee-postgres.json"
ORACLE_CONNECTOR = CONNECTORS_DIR / "apogee-oracle.json"


def load_connector(path: Path) -> dict[str, Any]:
    """A connector file in Connect REST form: ``{"name": str, "config": {str: str}}``."""
    data: dict[str, Any] = json.loads(path.read_text())
    if not isinstance(data.get("name"), str) or not isinstance(data.get("config"), dict):
        raise StackError(f"{path}: expected {{'name': ..., 'config': {{...}}}}")
    return data


class Connect:
    """Start the worker, register the APOGÉE connector, report connector state."""

    def __init__(self, cfg: StackConfig, env: dict[str, str]) -> None:
        self.cfg = cfg
        self.env = env
        self.proc = Managed("connect", cfg.run_dir / "connect.pid", cfg.logs_dir / "connect.log")
        self.properties = cfg.state_dir / "config" / "connect-distributed.properties"

    def worker_properties(self) -> str:
        c = self.cfg
        return "\n".join([
            f"bootstrap.servers={c.bootstrap_servers}",
            "group.id=reconciler-connect",
            f"listeners=http://{c.host}:{c.connect_port}",
            f"rest.advertised.host.name={c.host}",
            f"rest.advertised.port={c.connect_port}",
            "key.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable=false",
            "value.converter.schemas.enable=false",
            "config.storage.topic=_connect-configs",
            "offset.storage.topic=_connect-offsets",
            "status.storage.topic=_connect-status",
            "config.storage.replication.factor=1",
            "offset.storage.replication.factor=1",
            "status.storage.replication.factor=1",
            "offset.flush.interval.ms=1000",
            f"plugin.path={plugin_path(c)}",
            "plugin.discovery=hybrid_warn",
            "config.providers=env",
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            "",
        ])  # fmt: skip

    def running(self) -> bool:
        return self.proc.pid() is not None and self._rest_ok()

    def exporter_ok(self) -> bool:
        """The JMX exporter agent in Connect's JVM answers (Connect and Debezium MBeans)."""
        return http_ok(self.cfg.metrics_url(self.cfg.connect_metrics_port))

    def start(self) -> None:
        if self.running():
            if self.exporter_ok():
                return
            self.stop()  # started without the JMX exporter (an older stack): restart with it
        for port, setting in (
            (self.cfg.connect_port, "CONNECT_PORT"),
            (self.cfg.connect_metrics_port, "CONNECT_METRICS_PORT"),
        ):
            if self.proc.pid() is None and port_open(self.cfg.host, port):
                raise StackError(
                    f"Kafka Connect: port {port} is taken by another program "
                    f"(set RECONCILER_STACK_{setting})"
                )
        java_available(self.cfg)
        if self.proc.pid() is None:
            self.properties.parent.mkdir(parents=True, exist_ok=True)
            self.properties.write_text(self.worker_properties())
            self.proc.spawn(self._argv(), env=self.env)
        ready = lambda: self._rest_ok() and self.exporter_ok()  # noqa: E731
        if not wait_for(ready, self.cfg.start_timeout_s, every_s=0.5):
            raise StackError(
                f"Kafka Connect REST did not answer on {self.cfg.connect_url}\n"
                f"{tail(self.proc.log_file)}",
                self.proc.log_file,
            )

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=60)

    def _argv(self) -> list[str]:
        return [
            self.cfg.java,
            f"-Xmx{self.cfg.connect_heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            jmx_agent(self.cfg, self.cfg.connect_metrics_port, "kafka-connect.yaml"),
            f"-Dlog4j2.configurationFile={log4j2_config(self.cfg)}",
            "-cp",
            kafka_classpath(self.cfg),
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(self.properties),
        ]

    # -- REST ------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.cfg.connect_url, timeout=30.0)

    def _rest_ok(self) -> bool:
        with self._client() as http:
            return http.get("/connectors").status_code == 200

    def plugins(self) -> list[str]:
        with self._client() as http:
            return [p["class"] for p in http.get("/connector-plugins").json()]

    def register(self, path: Path = POSTGRES_CONNECTOR) -> str:
        """Create or update the connector (PUT is idempotent); returns its name."""
        spec = load_connector(path)
        with self._client() as http:
            resp = http.put(f"/connectors/{spec['name']}/config", json=spec["config"])
        if resp.status_code not in (200, 201):
            raise StackError(
                f"Connect refused {path.name}: HTTP {resp.status_code} {resp.text[:500]}",
                self.proc.log_file,
            )
        return str(spec["name"])

    def state(self, name: str) -> tuple[str, list[str]]:
        """(connector state, task states), e.g. ("RUNNING", ["RUNNING"]); "MISSING" if absent."""
        with self._client() as http:
            resp = http.get(f"/connectors/{name}/status")
        if resp.status_code == 404:
            return "MISSING", []
        body = resp.json()
        return body["connector"]["state"], [t["state"] for t in body.get("tasks", [])]

    def task_trace(self, name: str) -> str:
        with self._client() as http:
            body = http.get(f"/connectors/{name}/status").json()
        return "\n".join(t.get("trace", "")[:1500] for t in body.get("tasks", []) if t.get("trace"))

    def wait_running(self, name: str, timeout_s: float) -> None:
        """Wait for connector and task RUNNING; fail at once, with the task trace, on FAILED."""
        deadline = time.monotonic() + timeout_s
        state: tuple[str, list[str]] = ("UNKNOWN", [])
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                state = self.state(name)
            if "FAILED" in state[1] or state[0] == "FAILED":
                raise StackError(
                    f"connector {name} FAILED:\n{self.task_trace(name)}", self.proc.log_file
                )
            if state[0] == "RUNNING" and state[1] == ["RUNNING"]:
                return
            time.sleep(0.5)
        raise StackError(
            f"connector {name} not RUNNING after {timeout_s:.0f}s: {state}", self.proc.log_file
        )

    def validate(self, path: Path) -> dict[str, Any]:
        """Run Connect's config validation for a connector file (no connector is created)."""
        spec = load_connector(path)
        plugin = spec["config"]["connector.class"].rsplit(".", 1)[-1]
        with self._client() as http:
            resp = http.put(
                f"/connector-plugins/{plugin}/config/validate", json=spec["config"], timeout=120
            )
        if resp.status_code != 200:
            raise StackError(
                f"validation of {path.name} failed: HTTP {resp.status_code} {resp.text[:500]}"
            )
        result: dict[str, Any] = resp.json()
        return result
