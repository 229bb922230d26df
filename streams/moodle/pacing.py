"""Latency-aware pacing: slow down when Moodle slows down (AIMD on the call rate).

The token bucket (:class:`~streams.moodle.limits.TokenBucket`) enforces a rate; the
:class:`AdaptivePacer` decides which rate. Per kind of call (web-service function and a
power-of-two bucket of the request's size, so a 100-row batch is never compared with a one-row
lookup) it keeps a fast EWMA of the latency and, as the baseline, the minimum of that EWMA over
a sliding window. When the fast EWMA exceeds both ``latency_factor × baseline`` and the absolute
``latency_floor_s`` — or when a call fails with a transient error (``RetryLater``) — the rate is
multiplied by ``decrease_factor`` (not below ``min_rate``). While latency is normal it grows back
additively: each healthy answer adds ``recovery_step / rate``, i.e. ``recovery_step`` calls/s per
second while the client uses its allowance, and nothing while it is idle (an idle client learns
nothing about the site, so it does not jump back to full speed), up to the configured rate.

One decrease per round trip, as in TCP: a signal from a call that started before the last
decrease reflects the old rate and is not acted on again.

A baseline that stays high for a whole window becomes the new normal: the pacer then recovers
to the configured rate (a site that is durably slower is protected by the concurrency bound).

With ``follow_latency=False`` (the client's default since issue 8) only transient errors lower
the rate: latency drives the number of calls in flight instead
(:mod:`streams.moodle.concurrency`), since lowering the *rate* of calls that only queue on a
one-worker site does not bring latency down.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from streams.moodle.limits import Clock

log = logging.getLogger(__name__)

Reason = Literal["steady", "latency", "errors", "recovering", "disabled"]

__all__ = ["AdaptivePacer", "PacerSnapshot", "Reason"]


@dataclass(frozen=True)
class PacerSnapshot:
    """What the pacer is doing, for logs and metrics (gauges)."""

    rate_per_s: float
    """Effective rate the token bucket enforces now."""
    max_rate_per_s: float
    """Configured rate (``rate_per_s``): the ceiling recovery climbs back to."""
    reason: Reason
    """Why the rate is what it is: ``steady`` at the ceiling, ``latency``/``errors`` right after
    a decrease, ``recovering`` while climbing back, ``disabled`` when pacing is off."""
    latency_s: float | None
    """Fast EWMA of the latency of the last kind of call observed."""
    baseline_s: float | None
    """Its baseline (windowed minimum of the EWMA)."""
    decreases: int
    """Multiplicative decreases since start (a counter; none counted while at the floor)."""


class _Track:
    """Latency EWMA and its windowed minimum for one kind of call."""

    __slots__ = ("ewma", "mins")

    def __init__(self) -> None:
        self.ewma: float | None = None
        self.mins: deque[tuple[float, float]] = deque()  # (time, ewma), ewma increasing

    def update(self, now: float, latency: float, alpha: float, window_s: float) -> None:
        self.ewma = latency if self.ewma is None else alpha * latency + (1 - alpha) * self.ewma
        while self.mins and self.mins[-1][1] >= self.ewma:
            self.mins.pop()
        self.mins.append((now, self.ewma))
        while now - self.mins[0][0] > window_s:
            self.mins.popleft()

    @property
    def baseline(self) -> float:
        return self.mins[0][1]


class AdaptivePacer:
    """AIMD on the call rate, driven by call latency and transient errors.

    Feed it with :meth:`observe` (a call that Moodle answered) and :meth:`on_error` (a call that
    failed with a transient error); read :attr:`rate`.
    """

    def __init__(
        self,
        max_rate: float,
        *,
        min_rate: float = 0.5,
        latency_factor: float = 3.0,
        latency_floor_s: float = 0.5,
        recovery_step: float = 1.0,
        decrease_factor: float = 0.5,
        window_s: float = 300.0,
        alpha: float = 0.2,
        enabled: bool = True,
        follow_latency: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_rate <= 0 or min_rate <= 0 or recovery_step < 0:
            raise ValueError("rates must be > 0 and recovery_step >= 0")
        if not 0 < decrease_factor < 1 or not 0 < alpha <= 1 or latency_factor <= 1:
            raise ValueError("need 0 < decrease_factor < 1, 0 < alpha <= 1, latency_factor > 1")
        self.max_rate = max_rate
        self.min_rate = min(min_rate, max_rate)
        self.latency_factor = latency_factor
        self.latency_floor_s = latency_floor_s
        self.recovery_step = recovery_step
        self.decrease_factor = decrease_factor
        self.window_s = window_s
        self.alpha = alpha
        self.enabled = enabled
        self.follow_latency = follow_latency
        self._clock = clock
        self._rate = max_rate
        self._reason: Reason = "steady" if enabled else "disabled"
        self._tracks: dict[Hashable, _Track] = {}
        self._last_track: _Track | None = None
        self._last_decrease = float("-inf")
        self._decreases = 0

    @property
    def rate(self) -> float:
        """The rate (calls/s) the token bucket should enforce now."""
        return self._rate

    def observe(self, latency_s: float, kind: Hashable = None) -> None:
        """A call of ``kind`` was answered by Moodle after ``latency_s`` seconds."""
        if not self.enabled:
            return
        if not self.follow_latency:
            self._recover()
            return
        now = self._clock()
        track = self._tracks.get(kind)
        if track is None:
            track = self._tracks[kind] = _Track()
        track.update(now, latency_s, self.alpha, self.window_s)
        self._last_track = track
        assert track.ewma is not None
        slow = track.ewma > max(self.latency_factor * track.baseline, self.latency_floor_s)
        if slow:
            self._decrease(now - latency_s, "latency")
        else:
            self._recover()

    def on_error(self, elapsed_s: float = 0.0) -> None:
        """A call failed with a transient error (``RetryLater``) after ``elapsed_s`` seconds."""
        if self.enabled:
            self._decrease(self._clock() - elapsed_s, "errors")

    def snapshot(self) -> PacerSnapshot:
        track = self._last_track
        return PacerSnapshot(
            rate_per_s=self._rate,
            max_rate_per_s=self.max_rate,
            reason=self._reason,
            latency_s=track.ewma if track else None,
            baseline_s=track.baseline if track else None,
            decreases=self._decreases,
        )

    def _decrease(self, started: float, reason: Reason) -> None:
        now = self._clock()
        if started < self._last_decrease:
            return  # sent before the last decrease: already acted on
        self._last_decrease = now
        self._reason = reason
        if self._rate <= self.min_rate:
            return  # already at the floor
        self._decreases += 1
        old, self._rate = self._rate, max(self.min_rate, self._rate * self.decrease_factor)
        track = self._last_track
        log.warning(
            "moodle pacing: %s, rate %.2f -> %.2f calls/s (latency %s, baseline %s)",
            reason, old, self._rate,
            f"{track.ewma:.3f}s" if track and track.ewma is not None else "-",
            f"{track.baseline:.3f}s" if track else "-",
        )  # fmt: skip

    def _recover(self) -> None:
        if self._rate < self.max_rate:
            self._rate = min(self.max_rate, self._rate + self.recovery_step / self._rate)
            if self._rate >= self.max_rate:
                log.info("moodle pacing: back to %.2f calls/s", self._rate)
        self._reason = "steady" if self._rate >= self.max_rate else "recovering"
