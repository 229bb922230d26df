"""Latency-aware pacing: the AIMD pacer with a fake clock, its wiring into the client (mock
transport), and the client against the emulator with latency switched on while it runs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streams.emulator import Faults, Latency, running_emulator
from streams.moodle import Enrolment, MoodleClient, MoodleSettings, Status
from streams.moodle.limits import TokenBucket
from streams.moodle.pacing import AdaptivePacer, PacerSnapshot
from tests.unit.moodle.test_client_vs_emulator import COURSE, TOKEN, enrolled, seed


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answered(pacer: AdaptivePacer, clock: FakeClock, latency: float, n: int = 1) -> None:
    """``n`` calls one after another, each answered after ``latency`` seconds."""
    for _ in range(n):
        clock.now += latency
        pacer.observe(latency, "f")


def pacer(clock: FakeClock, **kw: Any) -> AdaptivePacer:
    return AdaptivePacer(10.0, clock=clock, **{"min_rate": 0.5, "recovery_step": 1.0, **kw})


# -- the pacer alone -------------------------------------------------------------------------


def test_steady_latency_keeps_the_configured_rate() -> None:
    clock = FakeClock()
    p = pacer(clock)
    answered(p, clock, 0.4, 50)
    snap = p.snapshot()
    assert (snap.rate_per_s, snap.reason, snap.decreases) == (10.0, "steady", 0)
    assert snap.latency_s == pytest.approx(0.4) and snap.baseline_s == pytest.approx(0.4)


def test_rate_halves_when_latency_triples() -> None:
    clock = FakeClock()
    p = pacer(clock, latency_factor=2.5)
    answered(p, clock, 0.3, 20)
    # EWMA (α 0.2) after n calls at 0.9 s: 0.9 - 0.6 × 0.8ⁿ; above 2.5 × 0.3 = 0.75 at n = 7.
    answered(p, clock, 0.9, 6)
    assert p.rate == 10.0
    answered(p, clock, 0.9)
    snap = p.snapshot()
    assert (snap.rate_per_s, snap.reason, snap.decreases) == (5.0, "latency", 1)
    assert snap.latency_s == pytest.approx(0.774, abs=1e-3)
    assert snap.baseline_s == pytest.approx(0.3)


def test_exactly_one_halving_per_round_trip() -> None:
    """Answers to calls sent before a decrease reflect the old rate: not acted on again."""
    clock = FakeClock()
    p = pacer(clock)
    answered(p, clock, 0.1, 10)
    clock.now += 5.0
    p.observe(5.0, "f")  # EWMA 1.08 > 3 × 0.1 and > 0.5: halve
    assert p.rate == 5.0
    for _ in range(4):  # four calls in flight alongside it, all sent before the decrease
        clock.now += 0.01
        p.observe(5.0, "f")
    assert p.rate == 5.0 and p.snapshot().decreases == 1
    clock.now += 5.0
    p.observe(5.0, "f")  # sent after the decrease, still slow: halve again
    assert p.rate == 2.5


def test_never_below_the_floor() -> None:
    clock = FakeClock()
    p = pacer(clock, min_rate=1.5)
    answered(p, clock, 0.1, 10)
    answered(p, clock, 10.0, 30)
    assert p.rate == 1.5
    assert p.snapshot().decreases == 3  # 10 → 5 → 2.5 → 1.5, then held at the floor
    assert p.snapshot().reason == "latency"


def test_min_rate_is_capped_at_the_configured_rate() -> None:
    p = AdaptivePacer(0.2, min_rate=0.5, clock=FakeClock())
    p.on_error()
    assert p.rate == 0.2


def test_recovers_additively_up_to_the_configured_rate() -> None:
    clock = FakeClock()
    p = pacer(clock, recovery_step=2.0)
    p.on_error()
    p.on_error()
    assert p.rate == 2.5 and p.snapshot().reason == "errors"
    answered(p, clock, 0.1)
    assert p.rate == pytest.approx(2.5 + 2.0 / 2.5)  # + step / rate per healthy answer
    assert p.snapshot().reason == "recovering"
    previous = p.rate
    increments = []
    for _ in range(200):
        answered(p, clock, 0.1)
        increments.append(p.rate - previous)
        previous = p.rate
    assert all(0 <= step <= 2.0 / 2.5 + 1e-9 for step in increments)  # additive, never a jump
    assert p.rate == 10.0 and p.snapshot().reason == "steady"


def test_recovery_is_about_step_per_second_while_calls_use_the_rate() -> None:
    clock = FakeClock()
    p = pacer(clock, recovery_step=1.0, min_rate=2.0)
    for _ in range(5):
        p.on_error()
    assert p.rate == 2.0
    start = clock.now
    while p.rate < 10.0:  # calls as fast as the bucket allows: one every 1/rate seconds
        clock.now += 1.0 / p.rate
        p.observe(0.05, "f")
    assert clock.now - start == pytest.approx(8.0, rel=0.1)  # 2 → 10 at 1 call/s per second


def test_sub_floor_noise_is_ignored() -> None:
    clock = FakeClock()
    p = pacer(clock)
    answered(p, clock, 0.01, 10)
    answered(p, clock, 0.4, 50)  # 40 × baseline, but under the 0.5 s floor
    assert p.rate == 10.0 and p.snapshot().decreases == 0


def test_latency_is_compared_per_kind_of_call() -> None:
    """A 100-row batch is slower than a lookup: that is not a slowdown."""
    clock = FakeClock()
    p = pacer(clock)
    for _ in range(20):
        clock.now += 0.05
        p.observe(0.05, ("core_user_get_users_by_field", 3))
        clock.now += 2.0
        p.observe(2.0, ("enrol_manual_enrol_users", 10))
    assert p.rate == 10.0


def test_a_durably_slower_site_becomes_the_new_baseline() -> None:
    clock = FakeClock()
    p = pacer(clock, window_s=60.0, recovery_step=5.0)
    answered(p, clock, 0.2, 10)
    answered(p, clock, 2.0, 10)
    assert p.rate < 10.0
    answered(p, clock, 2.0, 40)  # 80 s later the window holds only slow samples
    assert p.snapshot().baseline_s == pytest.approx(2.0, rel=0.05)
    assert p.rate == 10.0


def test_transient_errors_decrease_once_per_round_trip() -> None:
    clock = FakeClock()
    p = pacer(clock)
    p.on_error(elapsed_s=0.0)
    clock.now += 0.1
    p.on_error(elapsed_s=0.5)  # sent before the first decrease
    assert p.rate == 5.0 and p.snapshot().decreases == 1


def test_disabled_pacer_keeps_the_rate() -> None:
    clock = FakeClock()
    p = AdaptivePacer(10.0, enabled=False, clock=clock)
    answered(p, clock, 0.1, 10)
    answered(p, clock, 10.0, 10)
    p.on_error()
    assert p.snapshot() == PacerSnapshot(10.0, 10.0, "disabled", None, None, 0)


def test_snapshot_is_frozen() -> None:
    snap = AdaptivePacer(10.0, clock=FakeClock()).snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.rate_per_s = 1.0  # type: ignore[misc]


async def test_token_bucket_follows_set_rate() -> None:
    clock = FakeClock()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    bucket = TokenBucket(10.0, 1, clock=clock, sleep=sleep)
    await bucket.acquire()
    clock.now += 0.05  # half a token earned at 10/s, kept across the change
    bucket.set_rate(1.0)
    await bucket.acquire()
    assert sleeps == [pytest.approx(0.5)]
    with pytest.raises(ValueError):
        bucket.set_rate(0)


# -- wired into the client -------------------------------------------------------------------


def _client(handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock) -> MoodleClient:
    settings = MoodleSettings.model_validate(
        {"url": "https://moodle.test", "token": TOKEN, "rate_per_s": 100, "rate_burst": 1000,
         "max_attempts": 3, "rate_follows_latency": True}
    )  # fmt: skip

    async def no_sleep(seconds: float) -> None:
        clock.now += seconds

    return MoodleClient(
        settings, transport=httpx.MockTransport(handler), clock=clock, sleep=no_sleep
    )


async def test_client_rate_follows_latency_and_errors() -> None:
    clock = FakeClock()
    latency = [0.05]
    fail = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        clock.now += latency[0]
        if fail[0]:
            fail[0] -= 1
            return httpx.Response(503)
        return httpx.Response(200, json=[])

    async with _client(handler, clock) as moodle:
        for _ in range(10):
            await moodle.call("core_user_get_users_by_field", {"field": "id", "values": ["1"]})
        assert moodle.pacing().rate_per_s == 100.0
        latency[0] = 1.0
        for _ in range(3):
            await moodle.call("core_user_get_users_by_field", {"field": "id", "values": ["1"]})
        slowed = moodle.pacing()
        assert slowed.reason == "latency" and slowed.rate_per_s < 100.0
        assert moodle._bucket.rate == slowed.rate_per_s  # the bucket enforces it
        latency[0] = 0.05
        fail[0] = 1
        await moodle.call("core_webservice_get_site_info")  # 503, then answered
        after_error = moodle.pacing()
        assert after_error.decreases == slowed.decreases + 1
        assert after_error.rate_per_s < slowed.rate_per_s


# -- against the emulator --------------------------------------------------------------------


async def _until(condition: Callable[[], bool], task: asyncio.Task[Any] | None = None) -> None:
    """Wait (at most 5 s) until ``condition`` holds; fail early if ``task`` dies."""
    deadline = time.monotonic() + 5.0
    while not condition():
        if task is not None and task.done():
            task.result()
            raise AssertionError("task finished before the condition held")
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_rate_drops_while_the_emulator_is_slow_and_nothing_is_lost() -> None:
    rows = [Enrolment(userid=100 + i, courseid=COURSE, roleid=5) for i in range(150)]
    async with running_emulator(seed()) as running:
        settings = MoodleSettings.model_validate(
            {"url": running.url, "token": TOKEN, "rate_per_s": 50, "rate_burst": 2,
             "max_batch_rows": 5, "min_rate_per_s": 4, "latency_floor_s": 0.05,
             "recovery_step_per_s": 400, "rate_follows_latency": True}
        )  # fmt: skip
        injector, stats = running.emulator.injector, running.emulator.stats
        async with MoodleClient(settings) as moodle:
            task = asyncio.create_task(moodle.enrol_manual_enrol_users(rows))
            await _until(lambda: stats.calls >= 6, task)  # a baseline of fast calls
            injector.configure(Faults(latency=Latency(distribution="fixed", mean_ms=120)))
            await _until(lambda: moodle.pacing().rate_per_s <= 50.0 / 4, task)
            slowed = moodle.pacing()
            assert slowed.reason == "latency" and slowed.rate_per_s >= 4.0
            assert slowed.latency_s is not None and slowed.latency_s > 0.05
            injector.configure(Faults())
            outcomes = await task
            # Latency back to normal: healthy calls bring the rate back up.
            for _ in range(100):
                if moodle.pacing().rate_per_s == 50.0:
                    break
                await moodle.site_info(refresh=True)
            assert moodle.pacing().reason == "steady"
        assert all(o.status is Status.APPLIED for o in outcomes)
        assert enrolled(running) == {r.userid for r in rows}
