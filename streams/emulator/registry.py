"""The function table of one emulated version, assembled from the per-component modules,
and Moodle's full list of function names (implemented or not)."""

from __future__ import annotations

from collections.abc import Callable

from streams.emulator.functions import (
    cohort,
    course,
    enrol,
    enrol_manual,
    enrol_meta,
    group,
    reportbuilder,
    user,
    webservice,
)
from streams.emulator.functions.base import Function
from streams.emulator.functions.names import MOODLE_FUNCTIONS

__all__ = ["FUNCTIONS", "MOODLE_FUNCTIONS", "function_table", "known_to_moodle"]


def function_table(at_least: Callable[[str], bool]) -> dict[str, Function]:
    """The emulated functions with their parameter and return descriptions for one version."""
    table: dict[str, Function] = {}
    for module in (enrol_manual, enrol, enrol_meta, user, course, cohort, group, reportbuilder):
        for function in module.functions(at_least):
            table[function.name] = function
    for function in webservice.functions(lambda: table):
        table[function.name] = function
    return table


def known_to_moodle(name: str) -> bool:
    return name in MOODLE_FUNCTIONS


FUNCTIONS = tuple(function_table(lambda _v: True))
