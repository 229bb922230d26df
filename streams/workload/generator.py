"""A realistic APOGÉE year: students, administrative enrolments and pedagogical contracts.

Deterministic from a seed: the same ``(students, seed)`` gives the same rows, byte for byte.
Students get a stage version of :func:`~streams.workload.university.catalogue` by its intake,
an ``INDIVIDU`` row (``COD_ETU`` = student number, the Moodle user ``idnumber``), one
``INS_ADM_ETP`` row in force (``ETA_IAE='E'``) and 25 ``IND_CONTRAT_ELP`` rows (mandatory
elements, options chosen from two lists, the level's transversal elements). A few repeat
their year with elements already acquired (``TEM_PRC_ICE='O'``: not followed), a few hold a
second administrative enrolment (double licence). Two students play a part in the demo's
story: one whose student number is issued late (``COD_ETU`` NULL at first), one missing from
Moodle at first.

>>> year = generate_year(students=40, seed=7)
>>> len(year.students), year.cod_ind_range
(40, (50000001, 50000040))
>>> generate_year(students=40, seed=7) == year
True
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from enum import StrEnum

from streams.workload.rows import Insert, Row, Tables, Transaction
from streams.workload.university import Stage, University, catalogue

__all__ = [
    "COD_IND_BASE",
    "Contract",
    "Part",
    "Student",
    "Year",
    "course_idnumber",
    "generate_year",
]

# The demo's own COD_IND range starts above this; the test suites' slices live in 60–99,999,999.
COD_IND_BASE = 50_000_000
MAX_STUDENTS = 99_999  # student numbers are 3yynnnnn (yy: year of first enrolment)

_LAST = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Lefèvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval",
    "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun",
    "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud",
    "Martinez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal",
    "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet", "Rolland",
    "Leclercq", "Guillaume", "Lecomte", "Nguyen", "Benali", "Haddad", "Diallo", "Traoré",
)  # fmt: skip
_FIRST = (
    "Emma", "Jade", "Louise", "Alice", "Chloé", "Lina", "Léa", "Rose", "Anna", "Mila", "Inès",
    "Ambre", "Julia", "Mia", "Léna", "Manon", "Juliette", "Lou", "Zoé", "Camille", "Sarah",
    "Eva", "Agathe", "Jeanne", "Lucie", "Nina", "Romane", "Clara", "Yasmine", "Maëlys",
    "Gabriel", "Léo", "Raphaël", "Arthur", "Louis", "Jules", "Adam", "Maël", "Lucas", "Hugo",
    "Noah", "Liam", "Sacha", "Paul", "Nathan", "Gabin", "Mohamed", "Aaron", "Tom", "Éthan",
    "Théo", "Noé", "Timéo", "Martin", "Victor", "Axel", "Nolan", "Mathis", "Malo", "Antoine",
    "Baptiste", "Enzo", "Samuel", "Yanis", "Rayan", "Clément", "Maxime", "Alexandre", "Thomas",
)  # fmt: skip
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


class Part(StrEnum):
    """A student's part in the demo's story."""

    REGULAR = "regular"
    LATE_NUMBER = "late_number"  # COD_ETU NULL in the initial load, issued later
    NOT_IN_MOODLE = "not_in_moodle"  # no Moodle account until the demo creates it


@dataclass(frozen=True, slots=True)
class Contract:
    """One administrative enrolment (stage version) and the contract drawn from its lists."""

    cod_etp: str
    cod_vrs_vet: int
    cod_dip: str
    primary: bool
    paid: bool
    created: dt.date
    elements: tuple[tuple[str, str, str], ...]  # (COD_ELP, COD_LSE, TEM_PRC_ICE)

    def followed(self) -> tuple[str, ...]:
        return tuple(elp for elp, _, tem in self.elements if tem == "N")


@dataclass(frozen=True, slots=True)
class Student:
    cod_ind: int
    cod_etu: int
    last_name: str
    usage_name: str
    first_name: str
    ine: str
    contracts: tuple[Contract, ...]
    part: Part = Part.REGULAR

    @property
    def username(self) -> str:
        return f"e{self.cod_etu}"

    @property
    def email(self) -> str:
        local = f"{self.first_name}.{self.usage_name}".lower().replace(" ", "-")
        return f"{local}.{self.cod_etu}@etu.univ-exemple.invalid"


def course_idnumber(cod_anu: str, cod_elp: str) -> str:
    """The default course mapping (the worker's ``RECONCILER_COURSE_TEMPLATE``)."""
    return f"{cod_anu}-{cod_elp}"


@dataclass(frozen=True)
class Year:
    """One academic year of generated students, in the COD_IND range the demo owns."""

    cod_anu: str
    seed: int
    students: tuple[Student, ...]
    cod_ind_base: int = COD_IND_BASE

    @property
    def university(self) -> University:
        return catalogue()

    @property
    def cod_ind_range(self) -> tuple[int, int]:
        return self.cod_ind_base + 1, self.cod_ind_base + max(len(self.students), 1)

    def student(self, part: Part) -> Student:
        return next(s for s in self.students if s.part is part)

    def course(self, cod_elp: str) -> str:
        return course_idnumber(self.cod_anu, cod_elp)

    # -- rows --------------------------------------------------------------------------------
    def individu(self, s: Student) -> Row:
        return {
            "cod_ind": s.cod_ind,
            "cod_etu": None if s.part is Part.LATE_NUMBER else s.cod_etu,
            "lib_nom_pat_ind": s.last_name.upper(),
            "lib_nom_usu_ind": s.usage_name.upper(),
            "lib_pr1_ind": s.first_name,
            "cod_nne_ind": s.ine,
        }

    def ins_adm_etp(self, s: Student, c: Contract) -> Row:
        return {
            "cod_anu": self.cod_anu,
            "cod_ind": s.cod_ind,
            "cod_etp": c.cod_etp,
            "cod_vrs_vet": c.cod_vrs_vet,
            "num_occ_iae": 1,
            "cod_dip": c.cod_dip,
            "cod_vrs_vdi": 1,
            "eta_iae": "E",
            "eta_pmt_iae": "P" if c.paid else "A",
            "tem_iae_prm": "O" if c.primary else "N",
            "dat_cre_iae": c.created,
            "dat_annul_iae": None,
        }

    def contract_row(
        self, s: Student, c: Contract, cod_elp: str, cod_lse: str, tem: str, when: dt.date
    ) -> Row:
        return {
            "cod_anu": self.cod_anu,
            "cod_ind": s.cod_ind,
            "cod_etp": c.cod_etp,
            "cod_vrs_vet": c.cod_vrs_vet,
            "cod_elp": cod_elp,
            "cod_lse": cod_lse,
            "tem_prc_ice": tem,
            "dat_mod_ice": when,
        }

    def contract_rows(self, s: Student, c: Contract) -> list[Row]:
        when = c.created + dt.timedelta(days=7)
        return [self.contract_row(s, c, elp, lse, tem, when) for elp, lse, tem in c.elements]

    def student_ops(self, s: Student) -> list[Insert]:
        ops = [Insert("individu", self.individu(s))]
        for c in s.contracts:
            ops.append(Insert("ins_adm_etp", self.ins_adm_etp(s, c)))
            ops.extend(Insert("ind_contrat_elp", row) for row in self.contract_rows(s, c))
        return ops

    def initial_load(self, batch_rows: int = 5000) -> list[Transaction]:
        """The year's rows in transactions of about ``batch_rows`` rows (whole students)."""
        batches: list[Transaction] = []
        current: list[Insert] = []
        for s in self.students:
            current.extend(self.student_ops(s))
            if len(current) >= batch_rows:
                batches.append(tuple(current))
                current = []
        if current:
            batches.append(tuple(current))
        return batches

    def tables(self) -> Tables:
        """What the database holds after the initial load (student tables only)."""
        return Tables().apply_all(self.initial_load())

    def reference_rows(self) -> dict[str, list[Row]]:
        """``ELEMENT_PEDAGOGI`` and ``VERSION_ETAPE``: shared, written with upserts."""
        uni = self.university
        return {
            "element_pedagogi": [
                {
                    "cod_elp": e.cod_elp,
                    "lib_elp": e.lib_elp,
                    "lic_elp": e.lic_elp,
                    "cod_nel": e.cod_nel,
                    "cod_cmp": e.cod_cmp,
                    "eta_elp": "O",
                    "tem_sus_elp": "N",
                }
                for e in uni.elements.values()
            ],
            "version_etape": [
                {"cod_etp": etp, "cod_vrs_vet": vrs, "lib_web_vet": label}
                for etp, vrs, label in uni.versions()
            ],
        }


# -- generation -------------------------------------------------------------------------------
def generate_year(
    students: int, seed: int = 2026, cod_anu: str = "2026", cod_ind_base: int = COD_IND_BASE
) -> Year:
    """``students`` students (≥ 2: two of them play the late-number and missing-user parts)."""
    if not 2 <= students <= MAX_STUDENTS:
        raise ValueError(f"students must be between 2 and {MAX_STUDENTS}")
    rng = random.Random(f"apogee-year:{seed}:{cod_anu}")
    uni = catalogue()
    people = [_student(rng, uni, i, cod_ind_base, int(cod_anu)) for i in range(students)]
    regular = [i for i, s in enumerate(people) if len(s.contracts) == 1]
    late, missing = rng.sample(regular, 2)
    people[late] = _with_part(people[late], Part.LATE_NUMBER)
    people[missing] = _with_part(people[missing], Part.NOT_IN_MOODLE)
    return Year(cod_anu, seed, tuple(people), cod_ind_base)


def _with_part(s: Student, part: Part) -> Student:
    return Student(
        s.cod_ind, s.cod_etu, s.last_name, s.usage_name, s.first_name, s.ine, s.contracts, part
    )


def _student(rng: random.Random, uni: University, i: int, base: int, year: int) -> Student:
    stage = rng.choices(uni.stages, weights=[uni.weights[s.cod_etp] for s in uni.stages])[0]
    level = int(stage.cod_etp[1]) + (3 if stage.cod_etp[0] == "M" else 0)
    entry = year - (level - 1)  # the year their student number was issued
    cod_etu = 30_000_000 + (entry % 100) * 100_000 + i  # tests use 10–29.99M and 70M+
    last = rng.choice(_LAST)
    usage = rng.choice(_LAST) if rng.random() < 0.08 else last
    first = rng.choice(_FIRST)
    ine = f"{rng.randrange(10**9):09d}{rng.choice(_LETTERS)}"
    contracts = [_contract(rng, stage, year, primary=True, repeater=rng.random() < 0.06)]
    if stage.cod_etp == "L1MATH" and rng.random() < 0.1:  # double licence maths-informatique
        contracts.append(_contract(rng, uni.stage("L1INFO"), year, primary=False, repeater=False))
    return Student(base + i + 1, cod_etu, last, usage, first, ine, tuple(contracts))


def _contract(
    rng: random.Random, stage: Stage, year: int, *, primary: bool, repeater: bool
) -> Contract:
    version = stage.versions[-1][0] if len(stage.versions) > 1 and rng.random() < 0.15 else 1
    chosen = [
        *stage.mandatory,
        rng.choice(stage.first_list),
        *rng.sample(stage.second_list, 2),
        *stage.shared,
    ]
    acquired = set(rng.sample(stage.mandatory, rng.randint(2, 4))) if repeater else set()
    created = dt.date(year, 7, 1) + dt.timedelta(days=rng.randrange(92))
    elements = tuple(
        (elp, stage.list_of(elp), "O" if elp in acquired else "N") for elp in sorted(chosen)
    )
    return Contract(
        stage.cod_etp,
        version,
        stage.cod_dip,
        primary,
        rng.random() < 0.96,
        created,
        elements,
    )
