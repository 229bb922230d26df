"""Child processes of a run (a worker, the Moodle emulator): start, wait for HTTP, stop, kill.

Unlike the stack's services these belong to the program that starts them (the demo, a test,
a benchmark) and never outlive it: each runs in its own process group, its output goes to a
log file, and :meth:`Child.stop` or :meth:`Child.kill` ends the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from streams.devstack.errors import StackError
from streams.devstack.process import tail, tree_rss, wait_for

__all__ = ["Child", "emulator", "worker"]


class Child:
    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return tree_rss(self.proc.pid) if self.alive() and self.proc else 0

    def wait_http(self, url: str, timeout_s: float) -> None:
        """Until ``url`` answers 200; a clear error with the log's tail otherwise."""

        def ok() -> bool:
            if not self.alive():
                raise StackError(f"{self.name} exited ({self.returncode()}):\n{tail(self.log)}")
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)

        try:
            if wait_for(ok, timeout_s, every_s=0.2):
                return
        except StackError:
            raise
        if not self.alive():
            raise StackError(f"{self.name} exited ({self.returncode()}):\n{tail(self.log, 40)}")
        raise StackError(f"{self.name}: {url} not ready within {timeout_s:.0f}s\n{tail(self.log)}")

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the group (graceful), SIGKILL after ``timeout_s``."""
        self._signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the group: no shutdown code runs (a crash)."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *args]


def emulator(seed: Path, port: int, log: Path, *args: str, host: str = "127.0.0.1") -> Child:
    """``reconciler moodle-emulator`` on ``host:port`` (extra ``args``: profile, faults…)."""
    argv = _reconciler(
        "moodle-emulator", "--host", host, "--port", str(port), "--seed", str(seed), *args
    )
    return Child("moodle-emulator", argv, log)


def worker(env: Mapping[str, str], log: Path, *args: str) -> Child:
    """``reconciler worker`` with this environment (RECONCILER_*, MOODLE_*)."""
    return Child("worker", _reconciler("worker", *args), log, env)
