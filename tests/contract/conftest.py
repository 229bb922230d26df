"""Contract-test harness: one set of cases, run against the emulator (every emulated version)
and against a real Moodle when ``MOODLE_URL`` and ``MOODLE_TOKEN`` are set.

A real site must hold the users, courses (with the same enrolment instances), cohorts and
groups of ``seed_contract.json`` (same usernames / shortnames / idnumbers; ids are looked up).
Tokens are 32 letters and digits as Moodle makes them. Capabilities belong to users, so the
optional ``MOODLE_TOKEN_RESTRICTED`` (least-privilege cases) must be a token of another user
(``ws_contract_restricted`` in the seed). ``MOODLE_CONTRACT_IDS`` (a JSON file ``{"roles":
{...}, "groups": {...}}``) gives role or group ids that differ from the seed. Use a disposable
site: the cases enrol and unenrol the contract users; after each case the harness removes what
the case left, course by course and only where a manual instance exists (a call naming a
course without one fails as a whole on Moodle 4.4/PHP 8), and checks the seed state is back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from streams.emulator import REST_PATH, RunningEmulator, running_emulator
from streams.moodle.encoding import Param, encode_params

SEED_PATH = Path(__file__).with_name("seed_contract.json")
SEED: dict[str, Any] = json.loads(SEED_PATH.read_text(encoding="utf-8"))
EMULATED = ("4.4", "4.5", "5.1", "5.2")
MISSING = 999999  # an id that exists nowhere

pytestmark = pytest.mark.contract


def _version_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@dataclass
class Target:
    """Where the contract cases run: ``kind`` is "emulator" or "real"."""

    kind: str
    endpoint: str
    tokens: dict[str, str]
    version: str
    http: httpx.AsyncClient
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    running: RunningEmulator | None = None

    # -- ids --------------------------------------------------------------------------------
    def _id(self, table: str, name: str) -> int:
        found = self.ids.get(table, {}).get(name)
        if found is None:
            pytest.skip(f"{self.kind}: {table[:-1]} {name!r} not available on this site")
        return found

    def user(self, username: str) -> int:
        return self._id("users", username)

    def course(self, shortname: str) -> int:
        return self._id("courses", shortname)

    def role(self, shortname: str) -> int:
        return self._id("roles", shortname)

    def cohort(self, idnumber: str) -> int:
        return self._id("cohorts", idnumber)

    def group(self, name: str) -> int:
        return self._id("groups", name)

    def token(self, name: str) -> str:
        if name not in self.tokens:
            pytest.skip(f"{self.kind}: no {name!r} token (set MOODLE_TOKEN_{name.upper()})")
        return self.tokens[name]

    # -- versions and emulator-only features --------------------------------------------------
    def at_least(self, version: str) -> bool:
        return _version_key(self.version) >= _version_key(version)

    def emulator(self, why: str) -> RunningEmulator:
        if self.running is None:
            pytest.skip(f"real Moodle: {why} needs the emulator's inspection/controls")
        return self.running

    # -- calls ------------------------------------------------------------------------------
    async def raw(
        self,
        *,
        get: Mapping[str, str] | list[tuple[str, str]] | None = None,
        post: list[tuple[str, str]] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if post is None and content is None:
            return await self.http.get(self.endpoint, params=get)
        if post is not None:
            content = urlencode(post).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return await self.http.post(self.endpoint, params=get, content=content, headers=headers)

    async def post(
        self,
        wsfunction: str,
        params: Mapping[str, Param] | None = None,
        *,
        token: str = "main",
        fmt: str = "json",
    ) -> httpx.Response:
        """POST the call like a REST client does (function and format in the query string)."""
        form = [("wstoken", self.token(token)), *encode_params(params or {})]
        return await self.http.post(
            self.endpoint,
            params={"wsfunction": wsfunction, "moodlewsrestformat": fmt},
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def call(
        self,
        wsfunction: str,
        params: Mapping[str, Param] | None = None,
        *,
        token: str = "main",
        fmt: str = "json",
    ) -> Any:
        """POST the call; return the decoded JSON (Moodle errors included, at HTTP 200)."""
        response = await self.post(wsfunction, params, token=token, fmt=fmt)
        assert response.status_code == 200, response.text
        return response.json()

    def assert_php_fatal(self, response: httpx.Response) -> None:
        """A PHP fatal error: HTTP 500, empty text/html body, no Moodle error object (§11)."""
        assert response.status_code == 500, (response.status_code, response.text)
        assert response.content == b""
        assert response.headers.get("content-type", "").startswith("text/html")

    async def enrol(self, *rows: Mapping[str, Param], token: str = "main") -> Any:
        return await self.call("enrol_manual_enrol_users", {"enrolments": list(rows)}, token=token)

    async def unenrol(self, *rows: Mapping[str, Param], token: str = "main") -> Any:
        return await self.call(
            "enrol_manual_unenrol_users", {"enrolments": list(rows)}, token=token
        )

    async def enrolled(self, courseid: int, **options: str) -> list[dict[str, Any]]:
        opts = [{"name": k, "value": v} for k, v in options.items()]
        result = await self.call(
            "core_enrol_get_enrolled_users", {"courseid": courseid, "options": opts}
        )
        assert isinstance(result, list), result
        return result

    async def enrolled_ids(self, courseid: int, **options: str) -> list[int]:
        return [u["id"] for u in await self.enrolled(courseid, **options)]

    # -- assertions -------------------------------------------------------------------------
    def assert_error(
        self,
        body: Any,
        errorcode: str | None,
        message: str | None = None,
        *,
        debuginfo: str | None = None,
    ) -> None:
        """Moodle's error object; ``debuginfo`` is checked wherever the site sends it (the
        emulator runs with debugging on, so there it is always checked)."""
        assert isinstance(body, dict), body
        assert next(iter(body)) == "exception", body
        assert body.get("errorcode") == errorcode, body
        if message is not None:
            assert body["message"] == message, body
        if debuginfo is not None and (self.kind == "emulator" or "debuginfo" in body):
            assert body.get("debuginfo") == debuginfo, body


def _seed_ids() -> dict[str, dict[str, int]]:
    groups = {g["name"]: g["id"] for c in SEED["courses"] for g in c.get("groups", [])}
    return {
        "users": {u["username"]: u["id"] for u in SEED["users"] if not u.get("deleted")},
        "deleted": {u["username"]: u["id"] for u in SEED["users"] if u.get("deleted")},
        "courses": {c["shortname"]: c["id"] for c in SEED["courses"]},
        "roles": {r["shortname"]: r["id"] for r in SEED["roles"]},
        "cohorts": {c["idnumber"]: c["id"] for c in SEED["cohorts"]},
        "groups": groups,
    }


async def _real_ids(target: Target) -> dict[str, dict[str, int]]:
    seed = _seed_ids()
    users = await target.call(
        "core_user_get_users_by_field", {"field": "username", "values": list(seed["users"])}
    )
    ids: dict[str, dict[str, int]] = {
        "users": {u["username"]: u["id"] for u in users if "username" in u},
        "courses": {},
        "roles": dict(seed["roles"]),
        "cohorts": {},
        "groups": {},
    }
    for shortname in seed["courses"]:
        found = await target.call(
            "core_course_get_courses_by_field", {"field": "shortname", "value": shortname}
        )
        for course in found.get("courses", []):
            ids["courses"][shortname] = course["id"]
    cohorts = await target.call(
        "core_cohort_search_cohorts",
        {"query": "CONTRACT-", "context": {"contextid": 1}, "includes": "all"},
    )
    if isinstance(cohorts, dict):
        ids["cohorts"] = {c["idnumber"]: c["id"] for c in cohorts.get("cohorts", [])}
    extra = os.environ.get("MOODLE_CONTRACT_IDS")
    if extra:
        overrides = json.loads(Path(extra).read_text(encoding="utf-8"))  # noqa: ASYNC240 - tiny file
        for table, values in overrides.items():
            ids.setdefault(table, {}).update(values)
    return ids


def _manual_courses() -> list[str]:
    """Seed courses holding a manual instance, enabled or not (unenrol accepts a disabled one)."""
    return [
        c["shortname"]
        for c in SEED["courses"]
        if any(i.get("enrol") == "manual" for i in c.get("instances", [{"enrol": "manual"}]))
    ]


async def cleanup(target: Target) -> None:
    """Remove what a case left: contract users' manual enrolments (one call per course with a
    manual instance, never naming CT-NOMANUAL: on 4.4/PHP 8 one such row makes the whole call
    die with HTTP 500 and roll back), cohort members, and the meta link the cases create."""
    users = list(target.ids["users"].values())
    courses = target.ids["courses"]
    if "CT-META" in courses and "CT-C1" in courses:
        link = {"metacourseid": courses["CT-META"], "courseid": str(courses["CT-C1"])}
        await target.call("enrol_meta_delete_instances", {"instances": [link]})
    seeded = {c["idnumber"] for c in SEED["cohorts"]}
    found = await target.call(
        "core_cohort_search_cohorts",
        {"query": "CONTRACT-", "context": {"contextid": 1}, "includes": "all"},
    )
    extra: list[Param] = [c["id"] for c in found["cohorts"] if c["idnumber"] not in seeded]
    if extra:  # created by a case (core_cohort_create_cohorts)
        assert await target.call("core_cohort_delete_cohorts", {"cohortids": extra}) is None
    members: list[Param] = [
        {"cohortid": target.ids["cohorts"][idnumber], "userid": u}
        for idnumber in seeded
        if idnumber in target.ids["cohorts"]
        for u in users
    ]
    if members:
        assert await target.call("core_cohort_delete_cohort_members", {"members": members}) is None
    for shortname in _manual_courses():
        if shortname not in courses:
            continue
        rows: list[Param] = [{"userid": u, "courseid": courses[shortname]} for u in users]
        body = await target.call("enrol_manual_unenrol_users", {"enrolments": rows})
        assert body is None, (shortname, body)


async def assert_seed_state(target: Target) -> None:
    """The site is as the seed describes it: no contract user enrolled anywhere (the seed has no
    enrolments) and the contract cohorts empty."""
    users = set(target.ids["users"].values())
    for shortname, courseid in target.ids["courses"].items():
        left = users & set(await target.enrolled_ids(courseid))
        assert not left, f"{shortname}: contract users still enrolled after cleanup: {left}"
    seeded = {c["idnumber"] for c in SEED["cohorts"]}
    cohortids: list[Param] = [i for n, i in target.ids["cohorts"].items() if n in seeded]
    if cohortids:
        for row in await target.call("core_cohort_get_cohort_members", {"cohortids": cohortids}):
            assert not users & set(row["userids"]), f"cohort {row['cohortid']} not emptied"


@pytest.fixture(params=[*(f"emulator-{v}" for v in EMULATED), "real"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    param: str = request.param
    async with httpx.AsyncClient(timeout=30) as http:
        if param == "real":
            url, token = os.environ.get("MOODLE_URL"), os.environ.get("MOODLE_TOKEN")
            if not url or not token:
                pytest.skip("real Moodle: set MOODLE_URL and MOODLE_TOKEN to run against a site")
            tokens = {"main": token}
            if os.environ.get("MOODLE_TOKEN_RESTRICTED"):
                tokens["restricted"] = os.environ["MOODLE_TOKEN_RESTRICTED"]
            real = Target("real", url.rstrip("/") + REST_PATH, tokens, "0.0", http)
            info = await real.call("core_webservice_get_site_info")
            major_minor = re.match(r"(\d+)\.(\d+)", info["release"])
            assert major_minor is not None, info["release"]
            real.version = major_minor.group(0)  # "4.5.3 (Build…)", "5.0+", "5.2dev" → X.Y
            real.ids = await _real_ids(real)
            await cleanup(real)  # a previous run may have been interrupted
            await assert_seed_state(real)
            try:
                yield real
            finally:
                await cleanup(real)
                await assert_seed_state(real)
            return
        version = param.removeprefix("emulator-")
        async with running_emulator(SEED, version=version) as running:
            tokens = {t["name"]: t["token"] for t in SEED["tokens"]}
            yield Target("emulator", running.endpoint, tokens, version, http, _seed_ids(), running)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    """An in-process emulator (newest version) on an ephemeral loopback port."""
    async with running_emulator(SEED) as running:
        yield running
