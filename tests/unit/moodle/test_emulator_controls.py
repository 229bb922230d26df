"""Emulator controls: HTTP fault/inspection endpoints, SQLite persistence, the example seed, CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from streams.emulator import running_emulator
from streams.emulator.cli import command

EXAMPLE = Path(__file__).parents[3] / "streams" / "emulator" / "seed_example.json"
TOKEN = "0123456789abcdef0123456789abcdef"


async def _enrol(http: httpx.AsyncClient, endpoint: str, userid: int) -> object:
    response = await http.post(
        endpoint,
        params={"wsfunction": "enrol_manual_enrol_users", "moodlewsrestformat": "json"},
        data={
            "wstoken": TOKEN,
            "enrolments[0][roleid]": "5",
            "enrolments[0][userid]": str(userid),
            "enrolments[0][courseid]": "2",
        },
    )
    return response.json()


async def test_faults_can_be_changed_while_running_over_http() -> None:
    async with running_emulator(EXAMPLE) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        assert (await http.post("/_emulator/faults", json={"maintenance": True})).status_code == 200
        body = await _enrol(http, emu.endpoint, 10)
        assert isinstance(body, dict) and body["errorcode"] == "sitemaintenance"
        await http.post("/_emulator/faults", json={"fail_next": 1, "error_kind": "http502"})
        faults = (await http.get("/_emulator/faults")).json()
        assert (faults["maintenance"], faults["fail_next"]) == (True, 1)  # merged, not replaced
        await http.delete("/_emulator/faults")
        assert await _enrol(http, emu.endpoint, 10) is None
        bad = await http.post("/_emulator/faults", json={"error_rate": 2})
        assert bad.status_code == 400
        rows = (await http.get("/_emulator/enrolments", params={"courseid": 2})).json()
        assert [(r["userid"], r["enrol"], r["status"]) for r in rows] == [(10, "manual", 0)]
        stats = (await http.get("/_emulator/stats")).json()
        assert stats["by_outcome"]["sitemaintenance"] == 1 and stats["rows_applied"] == 1


async def test_stats_tell_rows_that_changed_moodle_from_duplicate_deliveries() -> None:
    async with running_emulator(EXAMPLE) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        lost = {"fail_next": 1, "error_kind": "dmlwriteexception", "when": "after"}
        await http.post("/_emulator/faults", json=lost)
        body = await _enrol(http, emu.endpoint, 10)  # applied, then the answer is an error
        assert isinstance(body, dict) and body["errorcode"] == "dmlwriteexception"
        assert await _enrol(http, emu.endpoint, 10) is None  # the retry finds it done
        assert await _enrol(http, emu.endpoint, 11) is None
        stats = (await http.get("/_emulator/stats")).json()
        assert (stats["rows_changed"], stats["rows_unchanged"]) == (2, 1)


async def test_http503_and_rate_limit_faults() -> None:
    async with running_emulator(EXAMPLE) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        await http.post("/_emulator/faults", json={"http503": True, "retry_after_s": 7})
        response = await http.get(emu.endpoint)
        assert (response.status_code, response.headers["Retry-After"]) == (503, "7")
        await http.post(
            "/_emulator/faults", json={"http503": False, "rate_limit": {"rps": 0.001, "burst": 1}}
        )
        statuses = [(await http.get(emu.endpoint)).status_code for _ in range(3)]
        assert statuses == [200, 429, 429]


async def test_users_created_later_can_be_enrolled() -> None:
    async with running_emulator(EXAMPLE) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        body = await _enrol(http, emu.endpoint, 500)
        assert isinstance(body, dict) and body["errorcode"] == "invaliduser"
        created = (await http.post("/_emulator/users", json={"id": 500, "username": "late"})).json()
        assert created["id"] == 500
        assert await _enrol(http, emu.endpoint, 500) is None


async def test_state_persists_in_sqlite_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "moodle.sqlite"
    async with running_emulator(EXAMPLE, state_file=db) as emu, httpx.AsyncClient() as http:
        assert await _enrol(http, emu.endpoint, 11) is None
    async with running_emulator(EXAMPLE, state_file=db) as emu:
        assert emu.state.is_enrolled(2, 11)
        assert emu.state.counters["user_enrolment_created"] == 1


async def test_config_endpoint_switches_version_live() -> None:
    async with running_emulator(EXAMPLE) as emu, httpx.AsyncClient(base_url=emu.url) as http:
        await http.post("/_emulator/config", json={"version": "4.4", "debug": True})
        response = await http.get(
            emu.endpoint, params={"wstoken": "x", "wsfunction": "y", "moodlewsrestformat": "json"}
        )
        assert response.json()["exception"] == "moodle_exception"
        assert (await http.post("/_emulator/config", json={"version": "3.9"})).status_code == 400


def test_cli_documents_its_flags() -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    for flag in ("--seed", "--state", "--version", "--max-input-vars", "--latency", "--error-rate",
                 "--timeout-rate", "--maintenance", "--http503", "--rate-limit-rps"):  # fmt: skip
        assert flag in result.output
