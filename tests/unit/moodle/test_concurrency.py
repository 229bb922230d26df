"""The adaptive concurrency limit: the gate, and a deterministic simulation of a site with N
PHP workers (FIFO queue, log-normal service times) driven through the limiter's decisions."""

from __future__ import annotations

import asyncio
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from streams.moodle.concurrency import ConcurrencyLimiter, Ticket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SimResult:
    throughput: float  # calls/s completed in the second half
    mean_limit: float  # time-weighted, second half
    mean_latency: float  # second half
    limits: list[int] = field(default_factory=list)


def simulate(workers: int, *, service_s: float = 0.44, sigma: float = 0.05,
             duration_s: float = 400.0, seed: int = 1,
             cost: Callable[[float], float] | None = None) -> SimResult:  # fmt: skip
    """Clients always have work (many lanes); the site serves ``workers`` calls at once;
    ``cost(now)`` overrides the median service time (calls whose cost changes over time)."""
    clock = FakeClock()
    limiter = ConcurrencyLimiter(32, clock=clock)
    rng = random.Random(seed)
    free_at = [0.0] * workers  # when each worker is next free (FIFO by arrival)
    done: list[tuple[float, int, Ticket]] = []  # (finish time, seq, ticket)
    seq = 0
    half = duration_s / 2
    completed, latency_sum, limit_area, last = 0, 0.0, 0.0, half
    limits: list[int] = []

    def send() -> None:
        nonlocal seq
        while (ticket := limiter.try_acquire()) is not None:
            worker = min(range(workers), key=lambda w: free_at[w])
            start = max(clock.now, free_at[worker])
            median = service_s if cost is None else cost(clock.now)
            finish = start + median * math.exp(rng.gauss(0.0, sigma))
            free_at[worker] = finish
            seq += 1
            heapq.heappush(done, (finish, seq, ticket))

    send()
    while done and clock.now < duration_s:
        finish, _, ticket = heapq.heappop(done)
        if finish > half:
            limit_area += limiter.limit * (finish - max(last, half))
            last = finish
        clock.now = finish
        latency = finish - ticket.sent_at
        limiter.release()
        limiter.on_answer(ticket, latency, "enrol")
        limits.append(limiter.limit)
        if finish > half:
            completed += 1
            latency_sum += latency
        send()
    span = clock.now - half
    return SimResult(completed / span, limit_area / span, latency_sum / completed, limits)


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_limit_settles_at_the_sites_workers(workers: int) -> None:
    """§11-like site (440 ms calls, p90 ≈ +7 %): full use, one call above now and then."""
    result = simulate(workers)
    capacity = workers / 0.44
    assert result.throughput >= 0.95 * capacity, (result.throughput, capacity)
    assert workers <= result.mean_limit < workers + 0.6, result.mean_limit
    assert result.mean_latency <= 1.25 * 0.44, result.mean_latency


@pytest.mark.parametrize("workers", [1, 8])
def test_noisier_site_still_used_without_collapse(workers: int) -> None:
    """p90 ≈ +17 %: noise alone must not walk the limit down (two-round confirmation)."""
    result = simulate(workers, sigma=0.12)
    assert result.throughput >= 0.9 * workers / 0.44
    assert result.mean_latency <= 1.5 * 0.44


@pytest.mark.parametrize("workers", [4, 8])
def test_calls_that_become_dearer_are_not_taken_for_queueing_for_long(workers: int) -> None:
    """30 s of unchanged rows (214 ms a call), then 30 s of new rows (440 ms), and so on. The
    dearer calls first read as queueing and the limit drops; once the baseline has caught up
    the limit searches upwards at slow-start pace, so the site stays mostly used and answers
    stay fast (the failure mode is caution, never overload)."""

    def phases(now: float) -> float:
        return 0.44 if int(now // 30) % 2 else 0.214

    result = simulate(workers, cost=phases)
    full = workers * (1 / 0.44 + 1 / 0.214) / 2  # calls/s with every worker always busy
    assert result.throughput >= 0.85 * full, (result.throughput, full)
    assert result.mean_latency <= 1.5 * 0.44


def test_a_fixed_limit_above_the_workers_only_queues() -> None:
    """Why the limit adapts: 8 calls on 1 worker give the same throughput at 8× the latency."""
    clock = FakeClock()
    fixed = ConcurrencyLimiter(8, adaptive=False, clock=clock)
    assert fixed.limit == 8 and fixed.snapshot().reason == "fixed"
    fixed.on_answer(Ticket(0.0, 8), 3.5, "enrol")  # no effect when not adaptive
    assert fixed.limit == 8


def test_slow_start_doubles_then_backs_off_to_littles_estimate() -> None:
    clock = FakeClock()
    limiter = ConcurrencyLimiter(64, min_samples=1, clock=clock)
    for expected in (2, 4, 8):  # no queueing: doubling each round
        tickets = [limiter.try_acquire() for _ in range(limiter.limit)]
        clock.now += 1.0
        for t in tickets:
            assert t is not None
            limiter.release()
            limiter.on_answer(t, 0.4, "k")
        assert limiter.limit == expected
    tickets = [limiter.try_acquire() for _ in range(8)]  # 8 in flight, site serves 4: 2× latency
    clock.now += 1.0
    for t in tickets:
        assert t is not None
        limiter.release()
        limiter.on_answer(t, 0.8, "k")
    snap = limiter.snapshot()
    assert (snap.limit, snap.reason, snap.decreases) == (4, "queueing", 1)


def test_app_limited_client_does_not_raise_its_limit() -> None:
    clock = FakeClock()
    limiter = ConcurrencyLimiter(16, initial=4, min_samples=1, probe_rounds=0, clock=clock)
    for _ in range(20):  # one call at a time although 4 are allowed
        t = limiter.try_acquire()
        assert t is not None
        clock.now += 0.4
        limiter.release()
        limiter.on_answer(t, 0.4, "k")
    assert limiter.limit == 4


def test_drops_halve_once_per_round_trip() -> None:
    clock = FakeClock()
    limiter = ConcurrencyLimiter(16, initial=8, clock=clock)
    early = Ticket(0.0, 8)
    clock.now = 1.0
    limiter.on_drop(Ticket(0.5, 8))
    assert limiter.limit == 4
    limiter.on_drop(early)  # sent before the decrease: already acted on
    assert limiter.limit == 4 and limiter.snapshot().reason == "errors"


async def test_gate_is_fifo_and_a_cancelled_waiter_passes_its_slot_on() -> None:
    limiter = ConcurrencyLimiter(1, adaptive=False)
    await limiter.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    waiters = [asyncio.create_task(take(n)) for n in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    limiter.release()
    await asyncio.wait_for(waiters[1], 1.0)
    limiter.release()
    await asyncio.wait_for(waiters[2], 1.0)
    assert order == [1, 2] and limiter.in_flight == 1
