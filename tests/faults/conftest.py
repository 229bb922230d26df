"""Fixtures of the fault-injection suite: its scale, the stack it breaks and heals, the figures.

Scale (``--faults-scale N`` or ``RECONCILER_FAULTS_SCALE=N``, default 1) multiplies the rounds
of faults, the students under load and the malformed records (10,000 × N).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streams.devstack import Stack
from tests.support.backends import Services
from tests.support.faults import FIGURES, heal_stack


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> int:
    option = request.config.getoption("--faults-scale")
    value = int(option if option is not None else os.environ.get("RECONCILER_FAULTS_SCALE", "1"))
    if value < 1:
        raise pytest.UsageError(f"--faults-scale must be at least 1, not {value}")
    return value


@pytest.fixture
def stack(services: Services) -> Iterator[Stack]:
    """The process stack, healed after the test whatever happened: Kafka and Connect running,
    the connector RUNNING (a test that stops them and fails must not break the next ones)."""
    if services.stack is None:
        pytest.skip("restarting Kafka and Connect needs the process stack (reconciler stack)")
    try:
        yield services.stack
    finally:
        heal_stack(services.stack)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("fault-injection figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
