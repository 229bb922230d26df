"""Fault injection and call statistics (latency, errors, timeouts, 503, 429, maintenance).

Faults are applied before a call is executed (or after, for ``when="after"``: the call is
applied and its answer lost, which is what a client sees when a proxy times out).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Latency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    distribution: Literal["none", "fixed", "uniform", "exponential", "lognormal"] = "none"
    mean_ms: float = Field(0.0, ge=0)
    min_ms: float = Field(0.0, ge=0)
    max_ms: float = Field(0.0, ge=0)
    sigma: float = Field(0.5, ge=0)

    def sample(self, rng: random.Random) -> float:
        """Seconds to wait before answering."""
        d = self.distribution
        if d == "none":
            return 0.0
        if d == "fixed":
            ms = self.mean_ms
        elif d == "uniform":
            ms = rng.uniform(self.min_ms, self.max_ms or self.mean_ms)
        elif d == "exponential":
            ms = self.min_ms + rng.expovariate(1.0 / self.mean_ms) if self.mean_ms else self.min_ms
        else:
            mu = math.log(max(self.mean_ms, 1e-3)) - self.sigma**2 / 2
            ms = self.min_ms + rng.lognormvariate(mu, self.sigma)
        if self.max_ms:
            ms = min(ms, self.max_ms)
        return ms / 1000.0


ErrorKind = Literal[
    "http500", "http502", "http503", "phpfatal", "dmlwriteexception", "dbconnectionfailed"
]  # phpfatal: HTTP 500 with an empty body, as PHP answers after a fatal error


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rps: float = Field(gt=0)
    burst: int = Field(1, ge=1)
    status: int = 429
    retry_after_s: int = 1


class Faults(BaseModel):
    """Everything settable through ``POST /_emulator/faults`` or CLI flags."""

    model_config = ConfigDict(extra="forbid")

    latency: Latency = Field(default_factory=Latency)
    error_rate: float = Field(0.0, ge=0, le=1)
    error_kind: ErrorKind = "http503"
    fail_next: int = Field(0, ge=0, description="fail exactly the next N calls with error_kind")
    timeout_rate: float = Field(0.0, ge=0, le=1)
    timeout_s: float = Field(60.0, ge=0)
    when: Literal["before", "after"] = "before"
    maintenance: bool = False
    http503: bool = False
    retry_after_s: int = 300
    rate_limit: RateLimit | None = None
    seed: int | None = None


class Stats:
    """Counters the tests read back: calls, concurrency, time stamps, input variables."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Zero the counters; calls in flight stay counted (they will leave)."""
        self.in_flight = getattr(self, "in_flight", 0)
        self.calls = 0
        self.by_function: Counter[str] = Counter()
        self.by_outcome: Counter[str] = Counter()
        self.max_in_flight = self.in_flight
        self.starts: deque[float] = deque(maxlen=100_000)
        self.max_vars_seen = 0
        self.truncated_calls = 0
        self.rows_applied = 0
        # Items of committed write calls: those that changed something, and those that found
        # Moodle already as sent (a duplicate delivery: a retry, a re-plan after a crash).
        self.rows_changed = 0
        self.rows_unchanged = 0
        self.busy_s = 0.0  # worker time spent serving calls (the cost model's service time)
        self.answered_s = 0.0  # time from arrival to answer, summed (queue wait included)
        self.answered = 0
        self.php_fatals = 0
        self.since = self.clock()
        self._flight_area = 0.0  # ∫ in_flight dt, for the time-weighted mean
        self._last_change = self.since

    def _integrate(self) -> None:
        now = self.clock()
        self._flight_area += self.in_flight * (now - self._last_change)
        self._last_change = now

    def enter(self) -> None:
        self._integrate()
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.starts.append(self._last_change)

    def leave(self, arrived: float | None = None) -> None:
        self._integrate()
        self.in_flight -= 1
        if arrived is not None:
            self.answered += 1
            self.answered_s += self._last_change - arrived

    def mean_in_flight(self) -> float:
        """Calls in flight (queued for a worker or served), averaged over time since reset."""
        self._integrate()
        elapsed = self._last_change - self.since
        return self._flight_area / elapsed if elapsed > 0 else 0.0

    def max_in_window(self, window_s: float) -> int:
        """Largest number of call starts within any window of ``window_s`` seconds."""
        times = list(self.starts)
        best = 0
        lo = 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def as_dict(self, window_s: float) -> dict[str, object]:
        return {
            "calls": self.calls,
            "by_function": dict(self.by_function),
            "by_outcome": dict(self.by_outcome),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "max_vars_seen": self.max_vars_seen,
            "truncated_calls": self.truncated_calls,
            "rows_applied": self.rows_applied,
            "rows_changed": self.rows_changed,
            "rows_unchanged": self.rows_unchanged,
            "php_fatals": self.php_fatals,
            "busy_s": round(self.busy_s, 6),
            "answered": self.answered,
            "mean_answer_s": round(self.answered_s / self.answered, 6) if self.answered else None,
            "mean_in_flight": round(self.mean_in_flight(), 4),
            "elapsed_s": round(self.clock() - self.since, 6),
            "window_s": window_s,
            "max_calls_in_window": self.max_in_window(window_s),
        }


class FaultInjector:
    """Decides, per call, what goes wrong; holds the emulator-side rate-limit bucket."""

    def __init__(
        self, faults: Faults | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.configure(faults or Faults())

    def configure(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self._pending_failures = faults.fail_next
        rl = faults.rate_limit
        self._tokens = float(rl.burst) if rl else 0.0
        self._last = self.clock()

    def rate_limited(self) -> bool:
        rl = self.faults.rate_limit
        if rl is None:
            return False
        now = self.clock()
        self._tokens = min(float(rl.burst), self._tokens + (now - self._last) * rl.rps)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return False
        return True

    def should_fail(self) -> bool:
        if self._pending_failures > 0:
            self._pending_failures -= 1
            return True
        return self.faults.error_rate > 0 and self.rng.random() < self.faults.error_rate

    def should_hang(self) -> bool:
        return self.faults.timeout_rate > 0 and self.rng.random() < self.faults.timeout_rate

    def delay(self) -> float:
        return self.faults.latency.sample(self.rng)
