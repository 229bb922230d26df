"""Does Moodle match APOGÉE? What SQL says should be enrolled, what Moodle's web services say is.

The expectation is plain SQL over the APOGÉE tables, written from the rules as the university
states them (reference/apogee.md), without any of the reconciler's code: a student follows
course ``{cod_anu}-{cod_elp}`` while they hold a student number, a contract element to follow
(``TEM_PRC_ICE='N'``), and a valid administrative enrolment (``ETA_IAE='E'``) in the same
stage version and year. The demo's summary, the end-to-end tests and the benchmarks compare it
with Moodle read through ``core_enrol_get_enrolled_users`` (onlyactive / onlysuspended).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from streams.moodle import MoodleClient

__all__ = [
    "Comparison",
    "compare",
    "expected_enrolments",
    "expected_from_rows",
    "moodle_enrolments",
]

EXPECTED_SQL = """
SELECT DISTINCT ice.cod_anu || '-' || ice.cod_elp AS course, i.cod_etu::text AS student
FROM apogee.ind_contrat_elp ice
JOIN apogee.individu i ON i.cod_ind = ice.cod_ind
WHERE ice.tem_prc_ice = 'N'
  AND i.cod_etu IS NOT NULL
  AND ice.cod_ind BETWEEN %(low)s AND %(high)s
  AND EXISTS (
    SELECT 1 FROM apogee.ins_adm_etp iae
    WHERE iae.cod_ind = ice.cod_ind AND iae.cod_anu = ice.cod_anu
      AND iae.cod_etp = ice.cod_etp AND iae.cod_vrs_vet = ice.cod_vrs_vet
      AND iae.eta_iae = 'E')
"""

Pairs = set[tuple[str, str]]


def expected_enrolments(dsn: str, cod_ind_range: tuple[int, int] = (0, 2**31 - 1)) -> Pairs:
    """(course idnumber, student number) that should be active, for students in the range."""
    low, high = cod_ind_range
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(EXPECTED_SQL, {"low": low, "high": high}).fetchall()
    return {(str(course), str(student)) for course, student in rows}


@dataclass(frozen=True)
class MoodleRoster:
    """Per course idnumber: user idnumber → "active" or "suspended" (missing course: absent)."""

    courses: Mapping[str, Mapping[str, str]]
    missing_courses: frozenset[str] = frozenset()

    def pairs(self, status: str) -> Pairs:
        return {
            (c, u) for c, users in self.courses.items() for u, s in users.items() if s == status
        }


async def moodle_enrolments(
    client: MoodleClient, courses: Iterable[str], concurrency: int = 4
) -> MoodleRoster:
    """Read each course's active and suspended enrolments through the web services."""
    gate = asyncio.Semaphore(concurrency)
    found: dict[str, dict[str, str]] = {}
    missing: set[str] = set()

    async def read(idnumber: str) -> None:
        async with gate:
            hits = await client.core_course_get_courses_by_field("idnumber", idnumber)
            if not hits:
                missing.add(idnumber)
                return
            course_id = hits[0].id
            active = await client.core_enrol_get_enrolled_users(course_id, onlyactive=True)
            suspended = await client.core_enrol_get_enrolled_users(course_id, onlysuspended=True)
        users = {u.idnumber: "suspended" for u in suspended if u.idnumber}
        users.update({u.idnumber: "active" for u in active if u.idnumber})
        found[idnumber] = users

    await asyncio.gather(*(read(c) for c in sorted(set(courses))))
    return MoodleRoster(found, frozenset(missing))


@dataclass(frozen=True)
class Comparison:
    expected: int
    active: int
    missing: Pairs = field(default_factory=set)  # expected, not active in Moodle
    extra: Pairs = field(default_factory=set)  # active in Moodle, not expected (ignored excluded)
    suspended: Pairs = field(default_factory=set)  # expected, but suspended in Moodle

    @property
    def matches(self) -> bool:
        return not (self.missing or self.extra or self.suspended)

    def summary(self) -> str:
        verdict = "Moodle matches APOGÉE" if self.matches else "Moodle DIFFERS from APOGÉE"
        return (
            f"{verdict}: {self.expected} enrolments expected, {self.active} active; "
            f"{len(self.missing)} missing, {len(self.extra)} extra, "
            f"{len(self.suspended)} wrongly suspended"
        )


def compare(
    expected: Pairs, roster: MoodleRoster, ignore: frozenset[tuple[str, str]] = frozenset()
) -> Comparison:
    """``ignore``: enrolments the reconciler must not own (a teacher's, another method's)."""
    active = roster.pairs("active") - set(ignore)
    suspended = roster.pairs("suspended")
    return Comparison(
        expected=len(expected),
        active=len(active),
        missing=expected - active - suspended,
        extra=active - expected,
        suspended=expected & suspended,
    )


def expected_from_rows(
    individu: Iterable[Mapping[str, Any]],
    ins_adm_etp: Iterable[Mapping[str, Any]],
    ind_contrat_elp: Iterable[Mapping[str, Any]],
    cod_ind_range: tuple[int, int] = (0, 2**31 - 1),
) -> Pairs:
    """The rule of ``EXPECTED_SQL``, over rows held in memory (unit tests, the demo's model)."""
    low, high = cod_ind_range
    numbers = {r["cod_ind"]: r["cod_etu"] for r in individu if r["cod_etu"] is not None}
    in_force = {
        (r["cod_ind"], r["cod_anu"], r["cod_etp"], r["cod_vrs_vet"])
        for r in ins_adm_etp
        if r["eta_iae"] == "E"
    }
    return {
        (f"{r['cod_anu']}-{r['cod_elp']}", str(numbers[r["cod_ind"]]))
        for r in ind_contrat_elp
        if r["tem_prc_ice"] == "N"
        and low <= r["cod_ind"] <= high
        and r["cod_ind"] in numbers
        and (r["cod_ind"], r["cod_anu"], r["cod_etp"], r["cod_vrs_vet"]) in in_force
    }
