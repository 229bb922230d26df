"""The emulator's ``core_reportbuilder_retrieve_report``: one row per user enrolment of the
seed's custom report on Course participants, paged, method names and statuses as the report
prints them; read back by ``streams.tools.methods``."""

from __future__ import annotations

from typing import Any

import pytest

from streams.emulator import running_emulator
from streams.moodle import MoodleClient, MoodleError, MoodleSettings
from streams.tools.methods import from_report

TOKEN = "0123456789abcdef0123456789abcdef"


def seed(capabilities: list[str]) -> dict[str, Any]:
    return {
        "site": {"version": "4.4"},
        "users": [{"id": 3, "username": "ws"}]
        + [{"id": 100 + i, "username": f"u{i}", "idnumber": f"2100000{i}"} for i in range(3)],
        "courses": [
            {
                "id": 10,
                "shortname": "C",
                "idnumber": "2026-INF101",
                "instances": [
                    {"enrol": "manual", "enrolments": [{"userid": 100, "roleid": 5}]},
                    {"enrol": "database", "roleid": 5, "enrolments": [100, 101]},
                    {"enrol": "cohort", "roleid": 5, "status": 1, "enrolments": [102]},
                ],
            }
        ],
        "reports": [{"id": 7}],
        "tokens": [
            {"token": TOKEN, "userid": 3, "capabilities": ["webservice/rest:use", *capabilities]}
        ],
    }


def client(url: str) -> MoodleClient:
    return MoodleClient(MoodleSettings.model_validate({"url": url, "token": TOKEN}))


async def test_one_row_per_user_enrolment_paged_with_the_reports_names() -> None:
    async with running_emulator(seed(["moodle/reportbuilder:view"])) as emu, client(emu.url) as c:
        page = await c.call("core_reportbuilder_retrieve_report", {"reportid": 7, "perpage": 2})
        assert page["data"]["totalrowcount"] == 4
        assert page["data"]["headers"] == ["Course ID number", "ID number", "Plugin", "Status"]
        assert [r["columns"] for r in page["data"]["rows"]] == [
            ["2026-INF101", "21000000", "Manual enrolments", "Active"],
            ["2026-INF101", "21000000", "External database", "Active"],
        ]
        assert await from_report(c, 7) == {
            "2026-INF101": {
                "21000000": {"manual": True, "database": True},
                "21000001": {"database": True},
                "21000002": {"cohort": False},  # a disabled instance: not current
            }
        }


async def test_without_the_capability_or_with_an_unknown_id_the_call_fails() -> None:
    async with running_emulator(seed([])) as emu, client(emu.url) as c:
        with pytest.raises(MoodleError) as denied:
            await c.call("core_reportbuilder_retrieve_report", {"reportid": 7})
        assert denied.value.errorcode == "errorreportview"
        with pytest.raises(MoodleError) as unknown:
            await c.call("core_reportbuilder_retrieve_report", {"reportid": 8})
        assert unknown.value.errorcode == "invalidrecord"
