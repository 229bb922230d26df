"""End-to-end runs: the real stack, a Moodle emulator process and worker processes.

A :class:`Run` owns one emulator (seeded with the test's users and courses), one worker
configuration (a fresh app id reading from the end of the CDC topics, so earlier tests'
rows are never replayed) and the test's own slice of APOGÉE: a ``COD_IND`` range and element
codes no other test uses. What Moodle should hold is computed by SQL
(:mod:`streams.workload.oracle`), what it holds is read through its web services.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from streams.applier.gateway import REQUIRED_CAPABILITIES
from streams.devstack import children
from streams.devstack.children import Child
from streams.moodle import MoodleClient, MoodleSettings
from streams.workload.oracle import compare, expected_enrolments, moodle_enrolments
from tests.support.backends import Services
from tests.support.ports import free_ports

TOKEN = "e2e0123456789abcdef0123456789abc"
YEAR = "2026"
CAPABILITIES = list(REQUIRED_CAPABILITIES)


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, every: float = 0.3
) -> Any:
    """Poll until ``condition()`` is truthy; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not true within {timeout_s:.0f}s (last: {last!r})")


async def eventually(
    condition: Callable[[], Awaitable[Any]], timeout_s: float, what: str, every: float = 0.5
) -> Any:
    """Async :func:`wait_until`."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await condition()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not true within {timeout_s:.0f}s (last: {last!r})")


@dataclass
class Slice:
    """A test's own students (COD_IND, student numbers) and elements (courses)."""

    base: int
    tag: str
    size: int = 100

    def cod_ind(self, i: int) -> int:
        return self.base + i

    def etu(self, i: int) -> str:
        return str(self.base + 10_000_000 + i)

    def elp(self, name: str) -> str:
        return f"{self.tag}{name}"[:8]

    def course(self, name: str) -> str:
        return f"{YEAR}-{self.elp(name)}"

    @property
    def range(self) -> tuple[int, int]:
        return (self.base, self.base + self.size - 1)


def new_slice(size: int = 100) -> Slice:
    n = uuid.uuid4().int
    return Slice(base=60_000_000 + (n % 30_000) * 1000, tag=f"E{n % 36**3:03X}"[:4], size=size)


def seed(slice_: Slice, elements: Sequence[str], users: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"version": "4.4", "max_input_vars": 5000},
        "users": [{"id": 3, "username": "ws"}]
        + [
            {"id": 1000 + i, "username": f"u{slice_.etu(i)}", "idnumber": slice_.etu(i)}
            for i in range(users)
        ],
        "courses": [
            {
                "id": 100 + k,
                "shortname": slice_.course(e),
                "idnumber": slice_.course(e),
                "instances": [{"enrol": "manual"}],
            }
            for k, e in enumerate(elements)
        ],
        "tokens": [
            {
                "token": TOKEN,
                "userid": 3,
                "capabilities": CAPABILITIES,
                "assignable_roles": [3, 4, 5],
            }
        ],
    }
    for key, value in extra.items():
        data[key] = data.get(key, []) + value if isinstance(value, list) else value
    return data


@dataclass
class Run:
    services: Services
    slice: Slice
    workdir: Path
    emulator_port: int
    worker_port: int
    app_id: str
    env: dict[str, str] = field(default_factory=dict)
    emulator: Child | None = None
    workers: list[Child] = field(default_factory=list)

    # -- processes -------------------------------------------------------------------------
    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}"

    def start_emulator(self, data: dict[str, Any], *args: str) -> None:
        path = self.workdir / "seed.json"
        path.write_text(json.dumps(data))
        self.emulator = children.emulator(
            path, self.emulator_port, self.workdir / "emulator.log", *args
        ).start()
        self.emulator.wait_http(f"{self.emulator_url}/_emulator/health", 60)

    def worker_env(self, **overrides: str) -> dict[str, str]:
        return {
            "MOODLE_URL": self.emulator_url,
            "MOODLE_TOKEN": TOKEN,
            "MOODLE_MAX_INPUT_VARS": "5000",
            "MOODLE_BACKOFF_BASE_S": "0.2",
            "MOODLE_BACKOFF_CAP_S": "1",
            "RECONCILER_KAFKA_BOOTSTRAP_SERVERS": self.services.bootstrap_servers,
            "RECONCILER_APP_ID": self.app_id,
            "RECONCILER_START_FROM": "latest",
            "RECONCILER_HTTP_PORT": str(self.worker_port),
            "RECONCILER_DATA_DIR": str(self.workdir / "worker-data"),
            "RECONCILER_GRACE_S": "3",
            "RECONCILER_PARK_RETRY_S": "2",
            "RECONCILER_RETRY_BASE_S": "0.5",
            "RECONCILER_RETRY_CAP_S": "3",
            "RECONCILER_TOPIC_CONTROL": f"{self.app_id}.control",
            "RECONCILER_TOPIC_AUDIT": f"{self.app_id}.audit",
            "RECONCILER_TOPIC_DEADLETTER": f"{self.app_id}.deadletter",
            "RECONCILER_TOPIC_MAPPING": f"{self.app_id}.mapping",
            "RECONCILER_TOPIC_SHADOW": f"{self.app_id}.shadow",
            **self.env,
            **overrides,
        }

    def start_worker(self, **overrides: str) -> Child:
        log = self.workdir / f"worker-{len(self.workers)}.log"
        worker = children.worker(self.worker_env(**overrides), log).start()
        self.workers.append(worker)
        port = overrides.get("RECONCILER_HTTP_PORT", str(self.worker_port))
        worker.wait_http(f"http://127.0.0.1:{port}/readyz", 120)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.emulator is not None:
            self.emulator.stop()

    # -- APOGÉE ------------------------------------------------------------------------------
    def sql(self, *statements: tuple[str, Sequence[Any]] | str) -> None:
        """Run statements in ONE transaction (as an APOGÉE edit does)."""
        with psycopg.connect(self.services.postgres_dsn) as conn, conn.transaction():
            for statement in statements:
                if isinstance(statement, str):
                    conn.execute(statement)
                else:
                    conn.execute(statement[0], statement[1])

    def person(self, i: int, etu: str | None = "auto") -> tuple[str, Sequence[Any]]:
        number = int(self.slice.etu(i)) if etu == "auto" else (int(etu) if etu else None)
        return (
            "INSERT INTO apogee.individu (cod_ind, cod_etu, lib_nom_pat_ind) "
            "VALUES (%s, %s, 'E2E')",
            (self.slice.cod_ind(i), number),
        )

    def enrolment(self, i: int, etp: str = "STG", state: str = "E") -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO apogee.ins_adm_etp (cod_anu, cod_ind, cod_etp, cod_vrs_vet, "
            "num_occ_iae, eta_iae) VALUES (%s, %s, %s, 1, 1, %s)",
            (YEAR, self.slice.cod_ind(i), self.slice.elp(etp)[:6], state),
        )

    def contract(self, i: int, element: str, etp: str = "STG") -> tuple[str, Sequence[Any]]:
        return (
            "INSERT INTO apogee.ind_contrat_elp (cod_anu, cod_ind, cod_etp, cod_vrs_vet, "
            "cod_elp, tem_prc_ice) VALUES (%s, %s, %s, 1, %s, 'N')",
            (YEAR, self.slice.cod_ind(i), self.slice.elp(etp)[:6], self.slice.elp(element)),
        )

    def uncontract(self, i: int, element: str) -> tuple[str, Sequence[Any]]:
        return (
            "DELETE FROM apogee.ind_contrat_elp WHERE cod_ind = %s AND cod_elp = %s",
            (self.slice.cod_ind(i), self.slice.elp(element)),
        )

    def student(self, i: int, *elements: str, etu: str | None = "auto") -> None:
        self.sql(self.person(i, etu), self.enrolment(i), *(self.contract(i, e) for e in elements))

    # -- Moodle, read through its web services ----------------------------------------------
    def client(self) -> MoodleClient:
        return MoodleClient(
            MoodleSettings(
                url=self.emulator_url,
                token=TOKEN,  # type: ignore[arg-type]
                max_input_vars=5000,
                rate_per_s=1000,
                rate_burst=100,
            )
        )

    async def roster(self, element: str) -> dict[str, str]:
        async with self.client() as client:
            found = await moodle_enrolments(client, [self.slice.course(element)])
        return dict(found.courses.get(self.slice.course(element), {}))

    async def matches_sql(
        self, elements: Sequence[str], ignore: frozenset[tuple[str, str]] = frozenset()
    ) -> str:
        """'' when Moodle equals what SQL says, else the differences."""
        courses = {self.slice.course(e) for e in elements}
        expected = {
            pair
            for pair in expected_enrolments(self.services.postgres_dsn, self.slice.range)
            if pair[0] in courses
        }
        async with self.client() as client:
            roster = await moodle_enrolments(client, sorted(courses))
        result = compare(expected, roster, ignore)
        if result.matches:
            return ""
        return (
            f"{result.summary()} missing={sorted(result.missing)[:5]} "
            f"extra={sorted(result.extra)[:5]} suspended={sorted(result.suspended)[:5]}"
        )

    def emulator_post(self, path: str, body: Any) -> Any:
        response = httpx.post(f"{self.emulator_url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def emulator_get(self, path: str) -> Any:
        return httpx.get(f"{self.emulator_url}{path}", timeout=10).json()

    def status(self, port: int | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:{port or self.worker_port}/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))


@contextmanager
def e2e_run(services: Services, tmp: Path, size: int = 100) -> Iterator[Run]:
    emulator_port, worker_port = free_ports(2)
    run = Run(
        services,
        new_slice(size),
        tmp,
        emulator_port,
        worker_port,
        app_id=f"e2e-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield run
    finally:
        run.stop()
