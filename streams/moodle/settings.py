"""Client configuration from the environment (prefix ``MOODLE_``), validated at start.

The token is a :class:`~pydantic.SecretStr`: never in ``repr``, logs or URLs. It can come
from ``MOODLE_TOKEN`` or from a file named ``moodle_token`` in a secrets directory (a mounted
Kubernetes Secret): ``MoodleSettings.from_env(secrets_dir="/run/secrets/moodle")``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MoodleSettings"]


class MoodleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOODLE_", extra="ignore", frozen=True)

    url: str = Field(description="Site root, e.g. https://moodle.example.edu (no /webservice/...).")
    token: SecretStr = Field(description="Web-service token of the least-privilege service user.")

    timeout_s: float = Field(30.0, gt=0, description="Whole-request timeout.")
    connect_timeout_s: float = Field(5.0, gt=0)
    max_concurrency: int = Field(
        8, ge=1, description="Ceiling of calls in flight (the adaptive limit stays below)."
    )
    adaptive_concurrency: bool = Field(
        True,
        description="Adapt calls in flight to what the site serves at once (latency-driven); "
        "false = always max_concurrency.",
    )
    initial_concurrency: int = Field(1, ge=1, description="Calls in flight allowed at start.")
    concurrency_tolerance: float = Field(
        0.1, ge=0, lt=1, description="Queued calls tolerated, as a share of calls in flight."
    )
    concurrency_probe_rounds: int = Field(
        5, ge=0, description="Quiet rounds between two probes of one more call in flight."
    )
    concurrency_window_s: float = Field(
        30.0, gt=0, description="Baseline latency = lowest EWMA over this many seconds."
    )
    timeout_hold_s: float | None = Field(
        None,
        ge=0,
        description="After a call times out Moodle may still be running it: its batch is not "
        "re-sent, and its slot stays taken, for this long (default: timeout_s).",
    )
    rate_per_s: float = Field(
        50.0,
        gt=0,
        description="Ceiling of the call rate (calls/s). The adaptive concurrency limit is what "
        "protects the site; at 10 calls/s, 100-row batches capped a worker at 1,000 "
        "enrolments/s, below what an 8-worker site takes (1,815/s calibrated).",
    )
    rate_burst: int = Field(5, ge=1)
    latency_backoff_enabled: bool = Field(
        True, description="Lower the rate when calls fail transiently (AIMD on the rate)."
    )
    rate_follows_latency: bool = Field(
        False,
        description="Also lower the rate when latency rises (the adaptive concurrency limit "
        "already does this better: a slow site gets fewer calls in flight, not fewer per second).",
    )
    latency_factor: float = Field(
        3.0, gt=1, description="Slow down when latency exceeds this multiple of its baseline."
    )
    latency_floor_s: float = Field(
        0.5, ge=0, description="…and exceeds this many seconds (ignores noise on fast calls)."
    )
    min_rate_per_s: float = Field(
        0.5, gt=0, description="Decreases never go below this rate (capped at rate_per_s)."
    )
    recovery_step_per_s: float = Field(
        1.0, ge=0, description="Rate regained (calls/s) per second of normal latency in use."
    )
    latency_window_s: float = Field(
        300.0, gt=0, description="Baseline = lowest latency EWMA over this many seconds."
    )
    max_attempts: int = Field(5, ge=1, description="Tries per call for transient errors.")
    backoff_base_s: float = Field(0.5, gt=0)
    backoff_cap_s: float = Field(30.0, gt=0)
    max_retry_after_s: float = Field(120.0, gt=0, description="Ceiling on a server's Retry-After.")
    max_input_vars: int = Field(1000, ge=20, description="The site's PHP max_input_vars.")
    input_vars_safety: float = Field(
        0.9, gt=0, le=1, description="Fraction of max_input_vars used."
    )
    max_batch_rows: int = Field(100, ge=1, description="Upper bound on rows per batched call.")
    page_size: int = Field(500, ge=1, description="limitnumber for paged reads.")
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _strip_url(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @property
    def hold_s(self) -> float:
        return self.timeout_s if self.timeout_hold_s is None else self.timeout_hold_s

    @property
    def endpoint(self) -> str:
        return f"{self.url}/webservice/rest/server.php"

    @classmethod
    def from_env(cls, secrets_dir: str | Path | None = None) -> MoodleSettings:
        """Read the environment and, if given (or ``MOODLE_SECRETS_DIR`` is set), files such as
        ``<secrets_dir>/moodle_token``."""
        directory = secrets_dir or os.environ.get("MOODLE_SECRETS_DIR")
        if directory is None:
            return cls()
        return cls(_secrets_dir=str(directory))
