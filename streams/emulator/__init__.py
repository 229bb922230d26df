"""A Moodle web-service emulator faithful to Moodle's own behaviour (docs/moodle-emulator.md).

Public surface: :class:`Emulator`, :func:`create_app`, :func:`running_emulator` (in-process, for
tests and benchmarks), :class:`Faults`, the cost profiles (:data:`PROFILES`: "instant",
"calibrated") and the ``reconciler moodle-emulator`` command (``cli``).
"""

from streams.emulator.app import REST_PATH, Emulator, RunningEmulator, create_app, running_emulator
from streams.emulator.cost import PROFILES, CostProfile, FunctionCost
from streams.emulator.faults import Faults, Latency, RateLimit
from streams.emulator.state import VERSIONS

__all__ = [
    "PROFILES",
    "REST_PATH",
    "VERSIONS",
    "CostProfile",
    "Emulator",
    "Faults",
    "FunctionCost",
    "Latency",
    "RateLimit",
    "RunningEmulator",
    "create_app",
    "running_emulator",
]
