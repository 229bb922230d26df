"""The one error type the dev stack raises: what failed, and where to look."""

from __future__ import annotations

from pathlib import Path


class StackError(RuntimeError):
    """A part of the local stack could not be set up, started or checked.

    The message says what failed in plain words; ``log`` points to the file to read.
    """

    def __init__(self, message: str, log: Path | None = None) -> None:
        self.log = log
        super().__init__(message if log is None else f"{message} (log: {log})")
