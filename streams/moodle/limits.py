"""Protecting Moodle: a token-bucket rate limiter and exponential backoff with jitter.

Both take their clock, sleep and random source as arguments so tests run without real time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]

__all__ = ["Backoff", "Clock", "Random", "Sleep", "TokenBucket"]


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``burst``.

    Waiters are served in order (a lock), so a burst of callers is spread evenly.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def set_rate(self, rate: float) -> None:
        """Change the rate from now on (tokens earned so far are kept, at the old rate).

        A waiter already asleep wakes at the time computed with the old rate, then re-checks.
        """
        if rate <= 0:
            raise ValueError("rate must be > 0")
        if rate != self.rate:
            self._refill()
            self.rate = rate

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits U(0, min(cap, base·factorⁿ)).

    A server's ``Retry-After`` is a floor: the delay is never shorter than it.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(
        self, attempt: int, rand: Random = random.random, retry_after: float | None = None
    ) -> float:
        ceiling = min(self.cap, self.base * self.factor**attempt)
        jittered = ceiling * rand()
        return max(jittered, retry_after or 0.0)
