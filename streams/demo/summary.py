"""The demo's last words: does Moodle match APOGÉE, and the figures of the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streams.demo.display import fmt_s
from streams.workload.oracle import Comparison

__all__ = ["EventResult", "Summary"]


@dataclass(frozen=True)
class EventResult:
    name: str
    title: str
    ok: bool
    outcome: str
    seconds: dict[str, float | None]


@dataclass
class Summary:
    matches: bool = False
    verdict: str = "the demo did not get to compare Moodle with APOGÉE"
    expected: int = 0
    active: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    wrongly_suspended: list[tuple[str, str]] = field(default_factory=list)
    students: int = 0
    seed: int = 0
    grace_s: float = 0.0
    courses: int = 0
    contract_rows: int = 0
    stack_up_s: float | None = None
    load_rows: int = 0
    load_write_s: float | None = None
    load_wall_s: float | None = None  # first row written → every initial enrolment applied
    load_enrolments: int = 0
    load_latency_p50_s: float | None = None  # the worker's commit → applied, initial load
    load_latency_p99_s: float | None = None
    events: list[EventResult] = field(default_factory=list)
    moodle_calls: int = 0
    moodle_calls_by_function: dict[str, int] = field(default_factory=dict)
    moodle_profile: str = ""
    wall_s: float = 0.0
    error: str | None = None
    logs: str = ""
    app_id: str = ""
    follow_edits: int = 0

    def compared(self, comparison: Comparison) -> None:
        self.matches = comparison.matches
        self.verdict = _verdict(comparison)
        self.expected, self.active = comparison.expected, comparison.active
        self.missing = sorted(comparison.missing)
        self.extra = sorted(comparison.extra)
        self.wrongly_suspended = sorted(comparison.suspended)

    @property
    def load_rate(self) -> float | None:
        if not self.load_wall_s or not self.load_enrolments:
            return None
        return self.load_enrolments / self.load_wall_s

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["load_enrolments_per_s"] = self.load_rate
        for name in ("missing", "extra", "wrongly_suspended"):
            document[name] = [list(p) for p in document[name][:100]]
        return document

    def lines(self) -> list[str]:
        out = [self.verdict]
        if self.error:
            out.append(f"  error         {self.error}")
        for label, pairs in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("suspended", self.wrongly_suspended),
        ):
            if pairs:
                shown = ", ".join(f"{c}/{u}" for c, u in pairs[:5])
                out.append(f"  {label:<13} {shown}{' …' if len(pairs) > 5 else ''}")
        out.append(
            f"  workload      {self.students:,} students, {self.contract_rows:,} contract rows, "
            f"{self.courses:,} Moodle courses (seed {self.seed}, grace window "
            f"{fmt_s(self.grace_s)})"
        )
        if self.load_wall_s is not None:
            rate = f" ({self.load_rate:,.0f} enrolments/s)" if self.load_rate else ""
            out.append(
                f"  initial load  {self.load_rows:,} rows committed in "
                f"{fmt_s(self.load_write_s)}; {self.load_enrolments:,} enrolments applied in "
                f"Moodle {fmt_s(self.load_wall_s)} after the first commit{rate}"
            )
        out += self._latency_lines()
        if self.events:
            good = sum(e.ok for e in self.events)
            out.append(f"  events        {good}/{len(self.events)} did what they should in Moodle")
        if self.moodle_calls:
            top = sorted(self.moodle_calls_by_function.items(), key=lambda kv: -kv[1])
            detail = ", ".join(f"{name} {n:,}" for name, n in top[:5])
            out.append(
                f"  Moodle calls  {self.moodle_calls:,} by the worker ({detail}); "
                f"emulator cost profile: {self.moodle_profile}"
            )
        stack = f" (stack up {fmt_s(self.stack_up_s)})" if self.stack_up_s is not None else ""
        out.append(f"  wall time     {fmt_s(self.wall_s)}{stack}")
        if self.logs:
            out.append(f"  logs          {self.logs}")
        return out

    def _latency_lines(self) -> list[str]:
        added = [e.seconds["added"] for e in self.events if e.seconds.get("added") is not None]
        removed = [
            e.seconds["removed"] for e in self.events if e.seconds.get("removed") is not None
        ]
        out = []
        if added or removed:
            parts = []
            if added:
                parts.append(f"additions {_span(added)}")
            if removed:
                parts.append(f"removals {_span(removed)} (grace window {fmt_s(self.grace_s)})")
            out.append(f"  latency       events, commit → seen in Moodle: {', '.join(parts)}")
        if self.load_latency_p50_s is not None:
            out.append(
                f"                initial load, commit → applied (worker): p50 "
                f"{fmt_s(self.load_latency_p50_s)}, p99 {fmt_s(self.load_latency_p99_s)} "
                "(rows queue behind the whole load)"
            )
        return out


def _span(values: list[float | None]) -> str:
    known = sorted(v for v in values if v is not None)
    low, high = fmt_s(known[0]), fmt_s(known[-1])
    return low if low == high else f"{low} – {high}"


def _verdict(c: Comparison) -> str:
    head = "Moodle matches APOGÉE" if c.matches else "Moodle DIFFERS from APOGÉE"
    return (
        f"{head}: {c.expected:,} enrolments expected, {c.active:,} active; "
        f"{len(c.missing):,} missing, {len(c.extra):,} extra, "
        f"{len(c.suspended):,} wrongly suspended"
    )
