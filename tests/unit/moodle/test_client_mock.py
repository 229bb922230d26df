"""MoodleClient against httpx.MockTransport: wire format, secrecy, retries, versions, paging."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from streams.moodle import (
    CohortMember,
    Enrolment,
    MoodleClient,
    MoodleSettings,
    Status,
    Unenrolment,
)
from streams.moodle.errors import (
    CallRejected,
    InvalidToken,
    MoodleBug,
    RateLimited,
    RequestTimeout,
    ServerError,
    SiteMaintenance,
)

TOKEN = "s3cr3t-token-value"
SITE_INFO = {
    "sitename": "s",
    "userid": 3,
    "release": "5.2dev (Build: 20260105)",
    "version": "2026010500.00",
}


def settings(**kw: object) -> MoodleSettings:
    # A generous rate limit: the bucket's own behaviour is tested with a fake clock elsewhere.
    base = {"url": "https://moodle.test/", "token": TOKEN, "rate_per_s": 1e6, "rate_burst": 1000}
    return MoodleSettings.model_validate({**base, **kw})


class Recorder:
    """A MockTransport handler answering from a script and recording what it received."""

    def __init__(self, answer: Callable[[str, list[tuple[str, str]]], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        form = parse_qsl(request.content.decode(), keep_blank_values=True)
        return self.answer(request.url.params["wsfunction"], form)


def client(recorder: Recorder, sleeps: list[float] | None = None, **kw: object) -> MoodleClient:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return MoodleClient(
        settings(**kw), transport=httpx.MockTransport(recorder), sleep=sleep, rand=lambda: 0.5
    )


def ok(value: object) -> httpx.Response:
    # Not httpx's json=: it sends no body at all for None, while Moodle sends "null".
    return httpx.Response(
        200, content=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )


def error(
    errorcode: str, exception: str = "moodle_exception", message: str = "m"
) -> httpx.Response:
    return httpx.Response(
        200, json={"exception": exception, "errorcode": errorcode, "message": message}
    )


async def test_wire_format_post_form_json_and_token_only_in_body() -> None:
    recorder = Recorder(lambda f, form: ok(None))
    async with client(recorder) as moodle:
        outcomes = await moodle.enrol_manual_enrol_users(
            [Enrolment(userid=7, courseid=9, roleid=5)]
        )
    assert [o.status for o in outcomes] == [Status.APPLIED]
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url).startswith("https://moodle.test/webservice/rest/server.php?")
    assert request.url.params["moodlewsrestformat"] == "json"
    assert TOKEN not in str(request.url)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(request.content.decode()) == [
        ("wstoken", TOKEN),
        ("enrolments[0][roleid]", "5"),
        ("enrolments[0][userid]", "7"),
        ("enrolments[0][courseid]", "9"),
        ("enrolments[0][timestart]", "0"),  # the full tuple, always
        ("enrolments[0][timeend]", "0"),
        ("enrolments[0][suspend]", "0"),
    ]


async def test_token_never_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder(lambda f, form: httpx.Response(503, text="down"))
    async with client(recorder, max_attempts=2) as moodle:
        with pytest.raises(ServerError) as info:
            await moodle.call("core_webservice_get_site_info")
        assert TOKEN not in repr(moodle) + repr(settings()) + str(settings())
    assert TOKEN not in str(info.value) + repr(info.value)
    assert TOKEN not in caplog.text
    assert "retry 1/1" in caplog.text


async def test_secret_can_come_from_a_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "moodle_token").write_text(TOKEN)
    monkeypatch.setenv("MOODLE_URL", "https://moodle.test")
    monkeypatch.delenv("MOODLE_TOKEN", raising=False)
    loaded = MoodleSettings.from_env(secrets_dir=tmp_path)
    assert loaded.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(loaded)


async def test_transient_errors_are_retried_with_backoff_then_succeed() -> None:
    script = iter(
        [
            httpx.Response(503, headers={"Retry-After": "3"}),
            error("sitemaintenance"),
            error("dmlwriteexception", "dml_write_exception"),
            ok(SITE_INFO),
        ]
    )
    sleeps: list[float] = []
    async with client(Recorder(lambda f, form: next(script)), sleeps, backoff_base_s=1.0) as moodle:
        info = await moodle.site_info()
    assert info.release_tuple == (5, 2)
    # attempt n waits U(0, base·2ⁿ) with rand=0.5, but never less than Retry-After.
    assert sleeps == [3.0, 1.0, 2.0]


async def test_timeouts_and_network_errors_are_retry_later() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async def no_sleep(seconds: float) -> None:
        return None

    moodle = MoodleClient(
        settings(max_attempts=3), transport=httpx.MockTransport(answer), sleep=no_sleep
    )
    with pytest.raises(RequestTimeout):
        await moodle.call("core_webservice_get_site_info")
    await moodle.aclose()


async def test_429_is_rate_limited_and_honours_retry_after() -> None:
    sleeps: list[float] = []
    recorder = Recorder(lambda f, form: httpx.Response(429, headers={"Retry-After": "2"}))
    async with client(recorder, sleeps, max_attempts=2) as moodle:
        with pytest.raises(RateLimited):
            await moodle.call("core_webservice_get_site_info")
    assert sleeps == [2.0]


async def test_permanent_errors_are_not_retried() -> None:
    recorder = Recorder(lambda f, form: error("invalidtoken"))
    async with client(recorder) as moodle:
        with pytest.raises(InvalidToken):
            await moodle.call("core_webservice_get_site_info")
    assert len(recorder.requests) == 1


async def test_rest_disabled_403_and_garbage_bodies() -> None:
    async with client(Recorder(lambda f, form: httpx.Response(403))) as moodle:
        with pytest.raises(CallRejected):
            await moodle.call("core_webservice_get_site_info")
    async with client(
        Recorder(lambda f, form: httpx.Response(200, text="<b>Notice</b>"))
    ) as moodle:
        with pytest.raises(MoodleBug):
            await moodle.call("core_webservice_get_site_info")


async def test_maintenance_outlasting_the_retries_defers_the_batch() -> None:
    recorder = Recorder(lambda f, form: error("sitemaintenance"))
    async with client(recorder, max_attempts=3) as moodle:
        outcomes = await moodle.enrol_manual_enrol_users([Enrolment(1, 2, 5), Enrolment(3, 2, 5)])
    assert [o.status for o in outcomes] == [Status.DEFERRED, Status.DEFERRED]
    assert isinstance(outcomes[0].error, SiteMaintenance)
    assert len(recorder.requests) == 3


@pytest.mark.parametrize(
    ("release", "sent"), [("5.1 (Build: 1)", True), ("5.2dev (Build: 2)", False)]
)
async def test_unenrol_sends_roleid_only_where_accepted(release: str, sent: bool) -> None:
    def answer(function: str, form: list[tuple[str, str]]) -> httpx.Response:
        if function == "core_webservice_get_site_info":
            return ok({**SITE_INFO, "release": release})
        return ok(None)

    recorder = Recorder(answer)
    async with client(recorder) as moodle:
        await moodle.enrol_manual_unenrol_users([Unenrolment(userid=1, courseid=2, roleid=5)])
    form = dict(parse_qsl(recorder.requests[-1].content.decode()))
    assert ("enrolments[0][roleid]" in form) is sent


async def test_batches_respect_max_input_vars_and_max_rows() -> None:
    sizes: list[int] = []

    def answer(function: str, form: list[tuple[str, str]]) -> httpx.Response:
        sizes.append(len(form))
        return ok(None)

    async with client(Recorder(answer), max_input_vars=200, max_batch_rows=1000) as moodle:
        rows = [Enrolment(userid=i, courseid=2, roleid=5) for i in range(100)]
        outcomes = await moodle.enrol_manual_enrol_users(rows)
    assert all(o.ok for o in outcomes) and len(outcomes) == 100
    assert max(sizes) + 2 <= 180  # body vars + wsfunction + format within 90 % of 200
    assert sum(sizes) - len(sizes) == 600  # every row sent once, 6 vars each


async def test_enrolled_users_pages_until_a_short_page() -> None:
    seen: list[dict[str, str]] = []

    def answer(function: str, form: list[tuple[str, str]]) -> httpx.Response:
        fields = dict(form)
        seen.append(fields)
        start = int(fields["options[1][value]"])
        ids = list(range(start, min(start + 2, 5)))
        return ok([{"id": i, "fullname": f"u{i}", "roles": []} for i in ids])

    async with client(Recorder(answer), page_size=2) as moodle:
        users = await moodle.core_enrol_get_enrolled_users(9, onlyactive=True)
    assert [u.id for u in users] == [0, 1, 2, 3, 4]
    assert [s["options[1][value]"] for s in seen] == ["0", "2", "4"]
    assert {s["options[0][name]"] for s in seen} == {"onlyactive"}


async def test_cohort_warnings_map_back_to_items() -> None:
    warnings = [
        {"warningcode": "3", "message": "record already exists: cohort(idnumber=C1 id=1)"},
        {"warningcode": "2", "message": "user id=2 not exists"},
    ]
    recorder = Recorder(lambda f, form: ok({"warnings": warnings}))
    async with client(recorder) as moodle:
        outcomes = await moodle.core_cohort_add_cohort_members(
            [CohortMember("C1", 1), CohortMember("C1", 2), CohortMember("C1", 3)]
        )
    assert [o.status for o in outcomes] == [Status.APPLIED, Status.REJECTED, Status.APPLIED]


async def test_concurrency_is_bounded_by_the_semaphore() -> None:
    in_flight = 0
    peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=json.loads('{"ok": 1}'))

    moodle = MoodleClient(
        settings(max_concurrency=3, rate_per_s=1000, rate_burst=1000),
        transport=httpx.MockTransport(answer),
    )
    await asyncio.gather(*(moodle.call("core_webservice_get_site_info") for _ in range(20)))
    await moodle.aclose()
    assert peak == 3
