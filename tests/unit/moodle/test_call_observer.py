"""The client's call observer: one report per HTTP round trip, with a bounded outcome, and
the worker's wiring of it to the Moodle metrics (the client itself knows no metrics)."""

from __future__ import annotations

import httpx
import pytest

from streams import metrics
from streams.moodle import CALL_OUTCOMES, MoodleClient, MoodleSettings
from streams.moodle.errors import CallRejected, MoodleBug, RequestTimeout, ServerError
from streams.moodle.errors import TransportError as NetworkError

SITE = {"sitename": "s", "userid": 3, "release": "4.4", "version": "2024042200"}


def _client(handler: httpx.MockTransport, seen: list[tuple[str, str, float]]) -> MoodleClient:
    settings = MoodleSettings.model_validate(
        {
            "url": "https://moodle.test/",
            "token": "t0k3n",
            "rate_per_s": 1e6,
            "rate_burst": 1000,
            "max_attempts": 3,
            "backoff_base_s": 0.001,
            "backoff_cap_s": 0.001,
            "timeout_hold_s": 0.0,
        }
    )
    ticks = iter(float(n) for n in range(10_000))
    return MoodleClient(
        settings,
        transport=handler,
        observer=lambda *call: seen.append(call),
        clock=lambda: next(ticks),
    )


async def test_an_answered_call_is_reported_ok_with_its_duration() -> None:
    seen: list[tuple[str, str, float]] = []
    async with _client(httpx.MockTransport(lambda r: httpx.Response(200, json=SITE)), seen) as c:
        await c.site_info()
    assert seen == [("core_webservice_get_site_info", "ok", 1.0)]


async def test_each_retry_is_a_round_trip_of_its_own() -> None:
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200, json=SITE)])
    seen: list[tuple[str, str, float]] = []
    async with _client(httpx.MockTransport(lambda r: next(answers)), seen) as c:
        await c.site_info()
    assert [outcome for _, outcome, _ in seen] == ["retry_later", "retry_later", "ok"]


@pytest.mark.parametrize(
    ("answer", "error", "outcome"),
    [
        (
            lambda r: httpx.Response(200, json={"exception": "x", "errorcode": "invalidtoken"}),
            CallRejected,
            "rejected",
        ),
        (lambda r: httpx.Response(200, text="<html>"), MoodleBug, "bug"),
        (lambda r: httpx.Response(502), ServerError, "retry_later"),
    ],
)
async def test_errors_are_reported_by_kind(answer: object, error: type, outcome: str) -> None:
    seen: list[tuple[str, str, float]] = []
    async with _client(httpx.MockTransport(answer), seen) as c:  # type: ignore[arg-type]
        with pytest.raises(error):
            await c.site_info()
    assert {o for _, o, _ in seen} == {outcome}
    assert outcome in CALL_OUTCOMES


async def test_timeouts_and_network_failures_are_reported() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler, error, outcome in (
        (timeout, RequestTimeout, "timeout"),
        (refused, NetworkError, "network"),
    ):
        seen: list[tuple[str, str, float]] = []
        async with _client(httpx.MockTransport(handler), seen) as c:
            with pytest.raises(error):
                await c.site_info()
        assert [o for _, o, _ in seen] == [outcome] * 3


async def test_a_failing_observer_never_fails_the_call() -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("observer bug")

    settings = MoodleSettings.model_validate(
        {"url": "https://moodle.test/", "token": "t", "rate_per_s": 1e6, "rate_burst": 10}
    )
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=SITE))
    async with MoodleClient(settings, transport=transport, observer=broken) as c:
        assert (await c.site_info()).sitename == "s"


def test_the_worker_wiring_counts_calls_and_durations() -> None:
    calls = metrics.MOODLE_CALLS.labels("core_course_get_courses_by_field", "timeout")
    hist = metrics.REGISTRY.get_sample_value(
        "reconciler_moodle_call_duration_seconds_count",
        {"function": "core_course_get_courses_by_field"},
    )
    before = calls._value.get()
    metrics.observe_moodle_call("core_course_get_courses_by_field", "timeout", 2.5)
    assert calls._value.get() == before + 1
    after = metrics.REGISTRY.get_sample_value(
        "reconciler_moodle_call_duration_seconds_count",
        {"function": "core_course_get_courses_by_field"},
    )
    assert after == (hist or 0) + 1
