"""Reproducible installs: uv.lock matches pyproject.toml, and every install path uses it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.ops.support import ROOT

UV = Path(sys.executable).with_name("uv")


def _pin() -> str:
    found = re.search(r'"uv==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert found, "pyproject.toml pins uv in the dev extra"
    return found.group(1)


@pytest.mark.skipif(not UV.exists() and not shutil.which("uv"), reason="uv not installed")
def test_the_lock_matches_pyproject() -> None:
    uv = str(UV) if UV.exists() else "uv"
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.split()[1] == _pin()
    out = subprocess.run(
        [uv, "lock", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr


def test_setup_ci_and_image_install_from_the_lock() -> None:
    dev = (ROOT / "dev").read_text()
    assert "sync --locked --extra dev" in dev and "pip install -q -e" not in dev
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
    assert "uv sync --locked --no-dev" in (ROOT / "Dockerfile").read_text()
    lock = (ROOT / "uv.lock").read_text()
    for package in ("faust-streaming", "aiokafka", "pydantic"):
        assert f'name = "{package}"' in lock
