"""Shared fixtures: the real services, session-scoped, from the selected backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.backends import Services, backend_name, container_services, process_services


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Kafka, Connect + Debezium, PostgreSQL (APOGÉE) and Prometheus, up and healthy."""
    factory = container_services if backend_name() == "containers" else process_services
    with factory() as handle:
        yield handle


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults-scale",
        type=int,
        default=None,
        help="scale of the fault-injection suite (tests/faults): rounds of faults, students, "
        "malformed records (×10,000). Default 1, or RECONCILER_FAULTS_SCALE.",
    )
