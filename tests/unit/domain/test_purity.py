"""The domain core stays pure: the import-linter contract exists, and no module imports I/O."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "httpx",
    "aiohttp",
    "prometheus_client",
    "psycopg",
    "requests",
    "rocksdict",
}


def test_the_import_linter_contract_guards_the_domain() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (domain,) = [c for c in contracts if c.get("source_modules") == ["streams.domain"]]
    assert domain["type"] == "forbidden"
    assert set(domain["forbidden_modules"]) >= FORBIDDEN


def test_no_domain_or_schema_module_imports_an_io_framework() -> None:
    for path in [*(ROOT / "streams" / "domain").glob("*.py"), *(ROOT / "schemas").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
                if path.parent.name == "schemas":
                    assert not name.startswith("streams"), f"{path.name} imports {name}"
