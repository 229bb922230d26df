"""What a call costs a real site, and the site's PHP workers (moodle-ws.md §11, issue 8).

A :class:`CostProfile` gives, per web-service function, a service time made of a per-call part
(Moodle's bootstrap, token check, parameter validation), a write overhead paid once when the
call changed anything, and a per-row part that depends on whether the row changed something
("new") or found Moodle already as sent ("unchanged": reads only, no writes, no events).
Reads pay per item returned. A log-normal jitter with median 1 keeps medians exact and makes
the p90 a few per cent higher, as on the real site.

``calibrated`` is fitted exactly on the §11 medians (one PHP worker, loopback):

==================  =========  ========  =========
call                1 row      100 rows  model
==================  =========  ========  =========
enrol, new          32.9 ms    440.7 ms  26.12 + 2.66 + 4.119 × n
enrol, unchanged    28.0 ms    214.4 ms  26.12 + 1.883 × n
unenrol             31.1 ms    471.0 ms  26.12 + 0.54 + 4.443 × n
==================  =========  ========  =========

Other functions use the same bootstrap and inferred per-item costs (not measured).
``instant`` costs nothing (unit tests). :class:`WorkerPool` holds N PHP workers: a call
beyond N waits for a free one, as PHP-FPM's listen queue makes it wait.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PROFILES", "CostProfile", "FunctionCost", "WorkerPool"]


class FunctionCost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_call_ms: float = Field(0.0, ge=0)
    per_write_call_ms: float = Field(0.0, ge=0, description="once, when the call changed anything")
    per_new_row_ms: float = Field(0.0, ge=0, description="per item that changed something")
    per_unchanged_row_ms: float = Field(0.0, ge=0, description="per item already as sent")
    per_result_item_ms: float = Field(0.0, ge=0, description="per item a read returns")


class CostProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    default: FunctionCost = FunctionCost()
    functions: Mapping[str, FunctionCost] = Field(default_factory=dict)
    jitter_sigma: float = Field(0.0, ge=0, description="log-normal sigma, median 1")
    http_overhead_ms: float = Field(
        0.0,
        ge=0,
        description="the emulator's own HTTP handling (aiohttp, loopback), deducted from what a "
        "worker sleeps so that answers, not only service times, take what the real site took",
    )

    def service_s(
        self,
        function: str,
        changed: int,
        unchanged: int,
        returned: int,
        rng: random.Random,
    ) -> float:
        """Seconds a worker spends on one call."""
        cost = self.functions.get(function, self.default)
        ms = (
            cost.per_call_ms
            + (cost.per_write_call_ms if changed else 0.0)
            + cost.per_new_row_ms * changed
            + cost.per_unchanged_row_ms * unchanged
            + cost.per_result_item_ms * returned
        )
        if ms and self.jitter_sigma:
            ms *= math.exp(rng.gauss(0.0, self.jitter_sigma))
        return ms / 1000.0


_BOOT: Final = 26.117  # ms: 28.0 (1 unchanged row) − 1.883 (one unchanged row)
_NEW: Final = 4.119  # ms: (440.7 − 32.9) / 99
_SAME: Final = 1.883  # ms: (214.4 − 28.0) / 99
_ENROL: Final = FunctionCost(
    per_call_ms=_BOOT,
    per_write_call_ms=2.664,  # 32.9 − 26.117 − 4.119
    per_new_row_ms=_NEW,
    per_unchanged_row_ms=_SAME,
)
_UNENROL: Final = FunctionCost(
    per_call_ms=_BOOT,
    per_write_call_ms=0.539,  # 31.1 − 26.117 − 4.443
    per_new_row_ms=4.443,  # (471.0 − 31.1) / 99
    per_unchanged_row_ms=_SAME,  # not enrolled: inferred like an unchanged enrol row
)

PROFILES: Final[Mapping[str, CostProfile]] = {
    "instant": CostProfile(name="instant"),
    "calibrated": CostProfile(
        name="calibrated",
        default=FunctionCost(
            per_call_ms=_BOOT,
            per_write_call_ms=2.664,
            per_new_row_ms=_NEW,
            per_unchanged_row_ms=_SAME,
            per_result_item_ms=0.3,  # inferred: reads were not timed on the real site
        ),
        functions={
            "enrol_manual_enrol_users": _ENROL,
            "enrol_manual_unenrol_users": _UNENROL,
        },
        jitter_sigma=0.05,  # p90 ≈ +6.6 %, within the 5–15 % seen
        http_overhead_ms=2.5,  # measured with bench/bench_emulator.py on 1-row calls
    ),
}


class WorkerPool:
    """N PHP workers (``None``: unbounded). FIFO: asyncio's semaphore wakes waiters in order."""

    def __init__(self, workers: int | None = None) -> None:
        self.resize(workers)

    def resize(self, workers: int | None) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self._slots = asyncio.Semaphore(workers) if workers else None
        self.busy = 0
        self.queued = 0
        self.max_queued = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        slots = self._slots
        if slots is None:
            self.busy += 1
            try:
                yield
            finally:
                self.busy -= 1
            return
        self.queued += 1
        self.max_queued = max(self.max_queued, self.queued)
        try:
            await slots.acquire()
        finally:
            self.queued -= 1
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            slots.release()
