"""Adaptive concurrency: as many calls in flight as the site works on at once, no more.

A Moodle site serves a call with one PHP worker; calls beyond its workers only wait in the
queue (issue 8: with one worker, four calls in flight quadrupled latency for no throughput).
Latency therefore says how many calls the site works on at once, and the limit follows it,
in the manner of TCP Vegas and Netflix's concurrency-limits:

* Per kind of call (function × power-of-two request size) a baseline latency is kept: the
  lowest EWMA over ``window_s``. A call sent alone (limit 1, nothing else in flight) cannot
  have queued behind our own calls, so it re-bases its kind.
* Decisions are taken once per *round*: ``max(limit, min_samples)`` answers to calls sent
  since the last change. With ``r`` the median ratio latency/baseline and ``n`` the calls that
  were in flight, ``n × (1 − 1/r)`` calls were queued (Little's law). If that is at least
  ``max(0.5, tolerance × n)`` the limit drops to ``n / r`` rounded up — the calls the site
  served at once; a queue under twice the threshold must show in two rounds running (noise),
  and the round after a decrease is not judged (calls queued at the old limit still delay
  it). Otherwise the limit doubles while starting (slow start), then grows by one every
  ``probe_rounds`` quiet rounds, to find out whether the site has one more worker.
* Calls that become dearer (the same 100-row call costs twice as much with new rows as with
  unchanged ones, §11) first read as queueing and lower the limit; once the windowed baseline
  has risen by 30 % since that decrease, the limit searches upwards again at slow-start pace.
* A call that times out, fails in transport, or gets a transient error halves the limit
  (once per round trip). Calls that were not all in flight (the client had less work than its
  limit) never raise it.

So one PHP worker settles at one call in flight, eight at eight, with a short probe above now
and then. :class:`ConcurrencyLimiter` also is the gate: FIFO waiters, and a slot can be held
after its call ended (a timed-out call that may still run on the site).
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from streams.moodle.limits import Clock

log = logging.getLogger(__name__)

Reason = Literal["starting", "steady", "queueing", "probing", "errors", "fixed"]

__all__ = ["ConcurrencyLimiter", "ConcurrencySnapshot", "Ticket"]


@dataclass(frozen=True)
class Ticket:
    """One call's slot: when it was sent, and how many calls were then in flight (itself too)."""

    sent_at: float
    in_flight: int


@dataclass(frozen=True)
class ConcurrencySnapshot:
    limit: int
    """Calls allowed in flight now."""
    max_limit: int
    in_flight: int
    reason: Reason
    decreases: int
    increases: int


class _Baseline:
    __slots__ = ("ewma", "mins")

    def __init__(self) -> None:
        self.ewma: float | None = None
        self.mins: deque[tuple[float, float]] = deque()

    def update(self, now: float, latency: float, alpha: float, window_s: float) -> float:
        self.ewma = latency if self.ewma is None else alpha * latency + (1 - alpha) * self.ewma
        while self.mins and self.mins[-1][1] >= self.ewma:
            self.mins.pop()
        self.mins.append((now, self.ewma))
        while now - self.mins[0][0] > window_s:
            self.mins.popleft()
        return self.mins[0][1]

    def rebase(self, now: float, latency: float) -> None:
        self.ewma = latency
        self.mins = deque([(now, latency)])


class ConcurrencyLimiter:
    """Gate on calls in flight with an adaptive limit (``adaptive=False``: fixed at max)."""

    def __init__(
        self,
        max_limit: int,
        *,
        initial: int = 1,
        adaptive: bool = True,
        tolerance: float = 0.1,
        probe_rounds: int = 5,
        min_samples: int = 3,
        window_s: float = 30.0,
        alpha: float = 0.1,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_limit < 1 or initial < 1 or min_samples < 1 or probe_rounds < 0:
            raise ValueError("limits and samples must be >= 1, probe_rounds >= 0")
        self.max_limit = max_limit
        self.adaptive = adaptive
        self.tolerance = tolerance
        self.probe_rounds = probe_rounds
        self.min_samples = min_samples
        self.window_s = window_s
        self.alpha = alpha
        self._clock = clock
        self._limit = min(initial, max_limit) if adaptive else max_limit
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._reason: Reason = "starting" if adaptive else "fixed"
        self._slow_start = adaptive
        self._quiet_rounds = 0
        self._changed_at = float("-inf")
        self._round: list[tuple[float, int, float]] = []
        self._baseline_at_decrease: float | None = None
        self._draining = False
        self._suspect = False
        self._tracks: dict[Hashable, _Baseline] = {}
        self._decreases = 0
        self._increases = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def snapshot(self) -> ConcurrencySnapshot:
        return ConcurrencySnapshot(
            self._limit, self.max_limit, self._in_flight, self._reason,
            self._decreases, self._increases,
        )  # fmt: skip

    # -- the gate ----------------------------------------------------------------------------
    def try_acquire(self) -> Ticket | None:
        """A slot now if one is free and nobody waits (no waiting: for simulations)."""
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            return Ticket(self._clock(), self._in_flight)
        return None

    async def acquire(self) -> Ticket:
        ticket = self.try_acquire()
        if ticket is not None:
            return ticket
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        return Ticket(self._clock(), self._in_flight)

    def release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self._in_flight += 1
            waiter.set_result(None)

    # -- the limit ---------------------------------------------------------------------------
    def on_answer(self, ticket: Ticket, latency_s: float, kind: Hashable = None) -> None:
        """Moodle answered a call (success or a Moodle error) after ``latency_s``."""
        if not self.adaptive:
            return
        now = self._clock()
        track = self._tracks.get(kind)
        if track is None:
            track = self._tracks[kind] = _Baseline()
        if ticket.in_flight == 1 and self._limit == 1:
            track.rebase(now, latency_s)  # alone: no queueing behind our own calls
        baseline = track.update(now, latency_s, self.alpha, self.window_s)
        if ticket.sent_at < self._changed_at:
            return  # sent under an older limit
        self._round.append(
            (latency_s / baseline if baseline > 0 else 1.0, ticket.in_flight, baseline)
        )
        if len(self._round) >= max(self._limit, self.min_samples):
            self._decide()

    def on_drop(self, ticket: Ticket) -> None:
        """A call got no usable answer (timeout, transport or transient error)."""
        if not self.adaptive or ticket.sent_at < self._changed_at:
            return
        self._slow_start = False
        self._quiet_rounds = 0
        self._set(max(1, self._limit // 2), "errors")

    def _decide(self) -> None:
        ratio = statistics.median(r for r, _, _ in self._round)
        used = max(n for _, n, _ in self._round)
        baseline = statistics.fmean(b for _, _, b in self._round)
        self._round = []
        if self._draining:
            self._draining = False  # calls queued at the old limit still delayed this round
            return
        queued = used * (1.0 - 1.0 / ratio) if ratio > 0 else 0.0
        threshold = max(0.5, self.tolerance * used)
        marginal = threshold <= queued < 2 * threshold
        if marginal and not self._suspect:
            self._suspect = True  # could be noise: decide on the next round
            return
        self._suspect = False
        if queued >= threshold:
            self._slow_start = False
            self._quiet_rounds = 0
            served = math.ceil(used / ratio - 0.05)  # Little's law, rounded up: never undershoot
            self._set(max(1, min(self._limit - 1, served)), "queueing")
            self._baseline_at_decrease = baseline
            return
        dearer = self._baseline_at_decrease
        if dearer is not None and baseline >= 1.3 * dearer:
            # The baseline caught up with calls that became dearer: what looked like queueing
            # was cost, so search upwards again at the slow-start pace.
            self._baseline_at_decrease = None
            self._slow_start = True
        if used < self._limit:
            self._reason = "steady"  # the client had less work than its limit: learnt nothing
            return
        if self._slow_start:
            self._set(min(self.max_limit, self._limit * 2), "starting")
            return
        self._quiet_rounds += 1
        if self._quiet_rounds > self.probe_rounds:
            self._quiet_rounds = 0
            self._set(min(self.max_limit, self._limit + 1), "probing")
        else:
            self._reason = "steady"

    def _set(self, limit: int, reason: Reason) -> None:
        self._reason = reason
        self._changed_at = self._clock()
        self._round = []
        if limit == self._limit:
            return
        if limit < self._limit:
            self._draining = True
            self._decreases += 1
            log.info("moodle concurrency: %s, limit %d -> %d", reason, self._limit, limit)
        else:
            self._increases += 1
            log.debug("moodle concurrency: %s, limit %d -> %d", reason, self._limit, limit)
        self._limit = limit
        self._wake()
