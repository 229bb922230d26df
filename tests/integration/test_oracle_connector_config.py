"""connectors/apogee-oracle.json passes Connect's own validation with the Oracle plugin loaded.

Nothing Oracle is reachable here, so connection errors are expected; every other key
must be known to the connector and valid.
"""

from __future__ import annotations

import httpx
import pytest

from streams.devstack.connect import ORACLE_CONNECTOR, POSTGRES_CONNECTOR, load_connector
from tests.support.backends import Services

pytestmark = pytest.mark.integration

# Keys whose validation needs a live database (connection refused / unknown host).
CONNECTION_KEYS = {
    "database.hostname",
    "database.port",
    "database.user",
    "database.password",
    "database.dbname",
    "database.pdb.name",
    "database.url",
}


# Keys defined outside the connector's own ConfigDef, so absent from the validation
# result's definitions: KafkaSchemaHistory's settings (Debezium passes the
# ``schema.history.internal.kafka.*`` group to that class) and Connect's topic-creation
# groups (KIP-158, checked by the worker).
PASS_THROUGH_PREFIXES = ("schema.history.internal.kafka.", "topic.creation.default.")


def _validate(services: Services, spec: dict[str, object]) -> dict[str, object]:
    config = spec["config"]
    assert isinstance(config, dict)
    plugin = str(config["connector.class"]).rsplit(".", 1)[-1]
    resp = httpx.put(
        f"{services.connect_url}/connector-plugins/{plugin}/config/validate",
        json={**config, "name": spec["name"]},
        timeout=180,
    )
    assert resp.status_code == 200, resp.text[:1000]
    return dict(resp.json())


def _errors(result: dict[str, object]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in result["configs"]:  # type: ignore[attr-defined]
        value = item.get("value") or {}
        if value.get("errors"):
            out[value["name"]] = value["errors"]
    return out


def _defined(result: dict[str, object]) -> set[str]:
    return {
        item["definition"]["name"]
        for item in result["configs"]  # type: ignore[attr-defined]
        if item.get("definition")
    }


def test_oracle_plugin_is_loaded(services: Services) -> None:
    plugins = httpx.get(f"{services.connect_url}/connector-plugins", timeout=30).json()
    classes = {p["class"] for p in plugins}
    assert "io.debezium.connector.oracle.OracleConnector" in classes
    assert "io.debezium.connector.postgresql.PostgresConnector" in classes


def test_oracle_connector_config_has_no_unknown_or_invalid_keys(services: Services) -> None:
    spec = load_connector(ORACLE_CONNECTOR)
    result = _validate(services, spec)
    errors = {k: v for k, v in _errors(result).items() if k not in CONNECTION_KEYS}
    assert errors == {}, errors
    unknown = {
        k
        for k in set(spec["config"]) - _defined(result)  # type: ignore[arg-type]
        if not k.startswith(PASS_THROUGH_PREFIXES)
    }
    assert unknown == set(), f"keys the Oracle connector does not define: {sorted(unknown)}"


def test_validation_would_catch_a_bad_key(services: Services) -> None:
    """The check above can fail: a mistyped value is reported by the same endpoint."""
    spec = load_connector(ORACLE_CONNECTOR)
    spec["config"]["log.mining.strategy"] = "no_such_strategy"
    assert "log.mining.strategy" in _errors(_validate(services, spec))


def test_oracle_and_postgres_connectors_write_the_same_topics(services: Services) -> None:
    pg = load_connector(POSTGRES_CONNECTOR)["config"]
    ora = load_connector(ORACLE_CONNECTOR)["config"]
    assert pg["topic.prefix"] == ora["topic.prefix"] == "apogee"
    routed = {ora[f"transforms.{t}.replacement"] for t in ora["transforms"].split(",")}
    tables = {t.replace("\\", "").split(".")[1] for t in pg["table.include.list"].split(",")}
    assert routed == {f"apogee.apogee.{t}" for t in tables}
