"""Resolve the stack's jars from Maven Central once, and reuse them afterwards.

The pins live in ``connectors/maven/pom.xml``; a stamp over the pom files decides
whether a resolution is needed, so a second start downloads nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from streams.devstack.config import CONNECTORS_DIR, StackConfig
from streams.devstack.errors import StackError

MAVEN_DIR = CONNECTORS_DIR / "maven"
MODULES = ("kafka", "debezium-postgres", "debezium-oracle", "jmx-exporter")
PLUGINS = ("debezium-postgres", "debezium-oracle")
METRICS_RULES_DIR = CONNECTORS_DIR / "metrics"


def pinned_versions() -> dict[str, str]:
    """The ``*.version`` properties of the parent pom (Kafka, Debezium, Log4j)."""
    text = (MAVEN_DIR / "pom.xml").read_text()
    return dict(re.findall(r"<([a-z0-9]+)\.version>([^<]+)</", text))


def _poms_digest() -> str:
    digest = hashlib.sha256()
    for pom in sorted(MAVEN_DIR.rglob("*.xml")):
        digest.update(pom.relative_to(MAVEN_DIR).as_posix().encode())
        digest.update(pom.read_bytes())
    return digest.hexdigest()


def _stamp(cfg: StackConfig) -> Path:
    return cfg.jars_dir / ".resolved"


def resolved(cfg: StackConfig) -> bool:
    """True when the jars on disk match the current pins."""
    stamp = _stamp(cfg)
    return (
        stamp.exists()
        and stamp.read_text() == _poms_digest()
        and all(any((cfg.jars_dir / m).glob("*.jar")) for m in MODULES)
    )


def ensure_jars(cfg: StackConfig) -> bool:
    """Resolve the jars if needed; True when Maven had to run."""
    if resolved(cfg):
        return False
    if shutil.which(cfg.mvn) is None:
        raise StackError(f"Maven ({cfg.mvn!r}) not found on PATH: install Maven to fetch the jars")
    shutil.rmtree(cfg.jars_dir, ignore_errors=True)
    cfg.jars_dir.mkdir(parents=True)
    log = cfg.logs_dir / "maven.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        cfg.mvn, "-B", "-s", str(MAVEN_DIR / "settings.xml"), "-f", str(MAVEN_DIR / "pom.xml"),
        "dependency:copy-dependencies", f"-Djars.dir={cfg.jars_dir}",
    ]  # fmt: skip
    with log.open("w") as out:
        rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        raise StackError("Maven could not resolve the stack jars (download refused?)", log)
    _stamp(cfg).write_text(_poms_digest())
    return True


def kafka_classpath(cfg: StackConfig) -> str:
    return str(cfg.jars_dir / "kafka" / "*")


def jmx_agent(cfg: StackConfig, port: int, rules: str) -> str:
    """``-javaagent``: the JMX exporter on ``host:port``, rules ``connectors/metrics/RULES``."""
    jars = sorted((cfg.jars_dir / "jmx-exporter").glob("jmx_prometheus_javaagent-*.jar"))
    if not jars:
        raise StackError("JMX exporter agent jar missing: run `reconciler stack fetch`")
    return f"-javaagent:{jars[-1]}={cfg.host}:{port}:{METRICS_RULES_DIR / rules}"


def plugin_path(cfg: StackConfig) -> Path:
    """A directory whose sub-directories are Connect plugins (symlinks to the jars)."""
    root = cfg.state_dir / "connect-plugins"
    root.mkdir(parents=True, exist_ok=True)
    for name in PLUGINS:
        link = root / name
        if not link.exists():
            link.symlink_to(cfg.jars_dir / name)
    return root
