"""What happens after a year's initial load: the changes the demo plays, and what each should do.

Each :class:`Event` is the rows APOGÉE commits (as APOGÉE commits them: a contract edit deletes
and re-inserts the student's rows in one transaction), an optional action in Moodle (an
account or a course created by an administrator), and the expected result in Moodle, as
(course idnumber, user idnumber) pairs: enrolled and active, suspended (after the grace
window), untouched (active and never modified: no suspend/reactivate flap).

Events are built from the rows as they stand (:class:`~streams.workload.rows.Tables`), so they
can be applied to the same model in memory and checked against the oracle without a database.

>>> from streams.workload.generator import generate_year
>>> year = generate_year(60, seed=3)
>>> [e.name for e in story(year, year.tables())]  # doctest: +NORMALIZE_WHITESPACE
['contract_resaved', 'option_swapped', 'element_dropped', 'enrolment_cancelled',
 'late_student_number', 'user_created', 'course_created']
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.workload.generator import Part, Student, Year
from streams.workload.moodle_seed import course_spec, user_spec
from streams.workload.rows import Delete, Insert, Row, Tables, Transaction, Update, key_of

__all__ = ["Event", "Pair", "option_swap", "story"]

Pair = tuple[str, str]  # (course idnumber, user idnumber)


@dataclass(frozen=True)
class Event:
    name: str
    title: str  # what happens, in the university's words
    student: Student | None
    transactions: tuple[Transaction, ...] = ()
    create_user: Mapping[str, Any] | None = None  # POST /_emulator/users
    create_course: Mapping[str, Any] | None = None  # POST /_emulator/courses
    parks: str | None = None  # "user" | "course": parked by the worker before the Moodle action
    active: frozenset[Pair] = field(default_factory=frozenset)
    suspended: frozenset[Pair] = field(default_factory=frozenset)
    untouched: frozenset[Pair] = field(default_factory=frozenset)

    @property
    def course(self) -> str | None:
        return None if self.create_course is None else str(self.create_course["idnumber"])

    def users(self) -> set[str]:
        return {u for _, u in self.active | self.suspended | self.untouched}


def _edit_date(year: Year) -> dt.date:
    return dt.date(int(year.cod_anu), 10, 12)


def _contract(tables: Tables, s: Student) -> list[Row]:
    rows = tables.rows["ind_contrat_elp"].values()
    return sorted((r for r in rows if r["cod_ind"] == s.cod_ind), key=lambda r: r["cod_elp"])


def _pairs(year: Year, s: Student, rows: Iterable[Row]) -> frozenset[Pair]:
    return frozenset((year.course(r["cod_elp"]), str(s.cod_etu)) for r in rows)


def _followed(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r["tem_prc_ice"] == "N"]


def _resave(year: Year, s: Student, old: Sequence[Row], new: Sequence[Row]) -> Transaction:
    """APOGÉE's contract edit: every row deleted, the new contract inserted, one transaction."""
    when = _edit_date(year)
    deletes = [Delete("ind_contrat_elp", _key(r)) for r in old]
    inserts = [Insert("ind_contrat_elp", {**r, "dat_mod_ice": when}) for r in new]
    return (*deletes, *inserts)


def _key(row: Row) -> Row:
    return dict(zip(("cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "cod_elp"),
                    key_of("ind_contrat_elp", row), strict=True))  # fmt: skip


def option_swap(year: Year, tables: Tables, s: Student, rng: random.Random) -> Event | None:
    """The student changes one option for another of the same list (a contract edit)."""
    rows = _contract(tables, s)
    stage = year.university.stage(rows[0]["cod_etp"]) if rows else None
    if stage is None:
        return None
    held = {r["cod_elp"] for r in rows}
    choices = [(r, alt) for r in rows for alt in stage.second_list + stage.first_list
               if r["tem_prc_ice"] == "N" and alt not in held
               and stage.list_of(alt) == r["cod_lse"]]  # fmt: skip
    if not choices:
        return None
    dropped, taken = rng.choice(choices)
    new = [r if r is not dropped else {**r, "cod_elp": taken} for r in rows]
    new.sort(key=lambda r: r["cod_elp"])
    user = str(s.cod_etu)
    kept = _pairs(year, s, _followed(r for r in rows if r is not dropped))
    return Event(
        "option_swapped",
        f"{s.first_name} {s.usage_name} ({user}, {stage.cod_etp}) swaps option "
        f"{dropped['cod_elp']} for {taken}: contract re-saved, {len(rows)} rows deleted and "
        f"re-inserted in one transaction",
        s,
        (_resave(year, s, rows, new),),
        active=kept | {(year.course(taken), user)},
        suspended=frozenset({(year.course(dropped["cod_elp"]), user)}),
        untouched=kept,
    )


def _resaved(year: Year, tables: Tables, s: Student) -> Event:
    rows = _contract(tables, s)
    pairs = _pairs(year, s, _followed(rows))
    return Event(
        "contract_resaved",
        f"{s.first_name} {s.usage_name} ({s.cod_etu}, {rows[0]['cod_etp']}): contract re-saved "
        f"unchanged, {len(rows)} rows deleted and re-inserted in one transaction",
        s,
        (_resave(year, s, rows, rows),),
        active=pairs,
        untouched=pairs,
    )


def _dropped(year: Year, tables: Tables, s: Student) -> Event:
    rows = _contract(tables, s)
    stage = year.university.stage(rows[0]["cod_etp"])
    gone = next(r for r in rows if r["cod_elp"] in stage.second_list)
    rest = _pairs(year, s, _followed(r for r in rows if r is not gone))
    return Event(
        "element_dropped",
        f"{s.first_name} {s.usage_name} ({s.cod_etu}) drops {gone['cod_elp']}: one contract "
        "row deleted",
        s,
        ((Delete("ind_contrat_elp", _key(gone)),),),
        active=rest,
        suspended=frozenset({(year.course(gone["cod_elp"]), str(s.cod_etu))}),
        untouched=rest,
    )


def _cancelled(year: Year, tables: Tables, s: Student) -> Event:
    iae = next(r for r in tables.values("ins_adm_etp") if r["cod_ind"] == s.cod_ind)
    pairs = _pairs(year, s, _followed(_contract(tables, s)))
    key = {c: iae[c] for c in ("cod_anu", "cod_ind", "cod_etp", "cod_vrs_vet", "num_occ_iae")}
    change = {"eta_iae": "A", "dat_annul_iae": _edit_date(year)}
    return Event(
        "enrolment_cancelled",
        f"{s.first_name} {s.usage_name} ({s.cod_etu}) withdraws: administrative enrolment in "
        f"{iae['cod_etp']} cancelled (ETA_IAE E → A)",
        s,
        ((Update("ins_adm_etp", key, change),),),
        suspended=pairs,
    )


def _late_number(year: Year, tables: Tables) -> Event:
    s = year.student(Part.LATE_NUMBER)
    pairs = _pairs(year, s, _followed(_contract(tables, s)))
    return Event(
        "late_student_number",
        f"{s.first_name} {s.usage_name} gets student number {s.cod_etu} "
        "(INDIVIDU.COD_ETU was NULL)",
        s,
        ((Update("individu", {"cod_ind": s.cod_ind}, {"cod_etu": s.cod_etu}),),),
        active=pairs,
    )


def _user_created(year: Year, tables: Tables) -> Event:
    s = year.student(Part.NOT_IN_MOODLE)
    pairs = _pairs(year, s, _followed(_contract(tables, s)))
    return Event(
        "user_created",
        f"Moodle account {s.username} created for {s.first_name} {s.usage_name} ({s.cod_etu})",
        s,
        create_user=user_spec(year, s),
        parks="user",
        active=pairs,
    )


def _course_created(year: Year, tables: Tables, students: Sequence[Student]) -> Event:
    late = year.university.late
    when = _edit_date(year)
    inserts: list[Insert] = []
    for s in students:
        iae = next(r for r in tables.values("ins_adm_etp") if r["cod_ind"] == s.cod_ind)
        row = {
            "cod_anu": year.cod_anu,
            "cod_ind": s.cod_ind,
            "cod_etp": iae["cod_etp"],
            "cod_vrs_vet": iae["cod_vrs_vet"],
            "cod_elp": late.cod_elp,
            "cod_lse": "UELIBRE",
            "tem_prc_ice": "N",
            "dat_mod_ice": when,
        }
        inserts.append(Insert("ind_contrat_elp", row))
    course = year.course(late.cod_elp)
    return Event(
        "course_created",
        f"Elective {late.cod_elp} ({late.lib_elp}) opened: {len(students)} students added "
        "in APOGÉE before its Moodle course exists; the course is created afterwards",
        None,
        (tuple(inserts),),
        create_course=course_spec(year, late),
        parks="course",
        active=frozenset((course, str(s.cod_etu)) for s in students),
    )


def story(year: Year, tables: Tables, late_course: bool = True) -> list[Event]:
    """The demo's events, in order, from the rows after the initial load (deterministic).

    ``late_course=False`` leaves out the course created later (an emulator without
    ``POST /_emulator/courses``).
    """
    rng = random.Random(f"apogee-events:{year.seed}:{year.cod_anu}")
    regular = [s for s in year.students if s.part is Part.REGULAR and len(s.contracts) == 1]
    full = [s for s in regular if all(t == "N" for _, _, t in s.contracts[0].elements)]
    a, b, c, d = rng.sample(full, 4)
    events = [_resaved(year, tables, a)]
    swap = option_swap(year, tables, b, rng)
    assert swap is not None  # a full contract always leaves two options of its list unchosen
    events += [swap, _dropped(year, tables, c), _cancelled(year, tables, d)]
    events += [_late_number(year, tables), _user_created(year, tables)]
    if late_course:
        others = [s for s in regular if s not in (a, b, c, d)]
        third = [s for s in others if s.contracts[0].cod_etp.startswith("L3")] or others
        events.append(_course_created(year, tables, rng.sample(third, min(8, len(third)))))
    return events
