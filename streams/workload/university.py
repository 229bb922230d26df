"""A plausible French university's catalogue: faculties, diplomas, stages and their elements.

Fixed, not random: the same codes every run, so a reader of the demo's output can follow a
student (``L1INFO`` version 1, elements ``INF101``…) from APOGÉE to Moodle. Three faculties
(``COD_CMP``), five bachelor's (Licence) tracks over three years and a master's over two;
each stage has mandatory elements, two option lists (one element chosen in the first, two in
the second) and the transversal English and career-project elements shared by every stage of
its level. A student following a stage has 25 contract elements.

>>> uni = catalogue()
>>> uni.stage("L1INFO").elements[:3]
('INF101', 'INF102', 'INF103')
>>> len(uni.stage("L1INFO").mandatory) + 1 + 2 + len(uni.stage("L1INFO").shared)
25
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

__all__ = ["Element", "Faculty", "Stage", "University", "catalogue"]

MANDATORY = 20  # per stage: ten per semester
FIRST_LIST = 3  # options offered in the first semester's list (one chosen)
SECOND_LIST = 4  # options offered in the second semester's list (two chosen)


@dataclass(frozen=True, slots=True)
class Faculty:
    cod_cmp: str
    name: str


@dataclass(frozen=True, slots=True)
class Element:
    """An ``ELEMENT_PEDAGOGI`` row; one Moodle course per element and year."""

    cod_elp: str
    lib_elp: str
    lic_elp: str
    cod_nel: str  # UE (mandatory unit) or MATI (option)
    cod_cmp: str


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage (étape) with its versions, diploma and the lists its contracts draw from."""

    cod_etp: str
    label: str
    cod_dip: str
    cod_cmp: str
    versions: tuple[tuple[int, str], ...]  # (COD_VRS_VET, LIB_WEB_VET)
    mandatory: tuple[str, ...]
    first_list: tuple[str, ...]
    second_list: tuple[str, ...]
    shared: tuple[str, ...]  # transversal elements, shared by every stage of the level

    @property
    def elements(self) -> tuple[str, ...]:
        return self.mandatory + self.first_list + self.second_list + self.shared

    def list_of(self, cod_elp: str) -> str:
        """``COD_LSE``: the list the element is chosen from (8 characters at most)."""
        if cod_elp in self.first_list:
            return f"{self.cod_etp}C1"
        if cod_elp in self.second_list:
            return f"{self.cod_etp}C2"
        if cod_elp in self.shared:
            return f"TRANSV{self.cod_etp[1]}"
        return f"{self.cod_etp}OB"


@dataclass(frozen=True)
class University:
    faculties: tuple[Faculty, ...]
    stages: tuple[Stage, ...]
    elements: dict[str, Element]
    weights: dict[str, int]  # relative intake per stage
    late: Element  # a free elective opened mid-term: its Moodle course comes later

    def stage(self, cod_etp: str) -> Stage:
        return next(s for s in self.stages if s.cod_etp == cod_etp)

    def versions(self) -> Iterator[tuple[str, int, str]]:
        for stage in self.stages:
            for vrs, label in stage.versions:
                yield stage.cod_etp, vrs, label


# (discipline code, prefix of element codes, faculty, diploma label, subject names)
_TRACKS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (
        "INFO",
        "INF",
        "SCI",
        "Informatique",
        (
            "Algorithmique",
            "Programmation",
            "Systèmes",
            "Réseaux",
            "Bases de données",
            "Architecture",
            "Logique",
            "Génie logiciel",
            "Compilation",
            "Sécurité",
            "Web",
            "Calculabilité",
            "Graphes",
            "Apprentissage automatique",
        ),
    ),
    (
        "MATH",
        "MAT",
        "SCI",
        "Mathématiques",
        (
            "Analyse",
            "Algèbre linéaire",
            "Probabilités",
            "Statistique",
            "Topologie",
            "Géométrie",
            "Calcul différentiel",
            "Analyse numérique",
            "Arithmétique",
            "Intégration",
            "Optimisation",
            "Équations différentielles",
        ),
    ),
    (
        "ECO",
        "ECO",
        "DEG",
        "Économie et gestion",
        (
            "Microéconomie",
            "Macroéconomie",
            "Comptabilité",
            "Statistique économique",
            "Histoire économique",
            "Marketing",
            "Finance",
            "Économétrie",
            "Droit des affaires",
            "Gestion des ressources humaines",
            "Économie internationale",
            "Contrôle de gestion",
        ),
    ),
    (
        "DROI",
        "DRT",
        "DEG",
        "Droit",
        (
            "Droit civil",
            "Droit constitutionnel",
            "Institutions juridictionnelles",
            "Droit administratif",
            "Droit pénal",
            "Histoire du droit",
            "Droit des obligations",
            "Droit européen",
            "Droit fiscal",
            "Procédure civile",
            "Libertés fondamentales",
            "Droit du travail",
        ),
    ),
    (
        "PSY",
        "PSY",
        "LSH",
        "Psychologie",
        (
            "Psychologie cognitive",
            "Psychologie sociale",
            "Psychologie du développement",
            "Neurosciences",
            "Psychopathologie",
            "Méthodologie",
            "Statistique appliquée",
            "Psychologie clinique",
            "Psychologie différentielle",
            "Éthologie",
            "Entretien clinique",
            "Psychologie du travail",
        ),
    ),
)

_FACULTIES = (
    Faculty("SCI", "UFR Sciences et Techniques"),
    Faculty("DEG", "UFR Droit, Économie, Gestion"),
    Faculty("LSH", "UFR Lettres et Sciences Humaines"),
)

# Stages per track: (level 1..5, label). Licence L1–L3 for every track; master M1–M2 in
# computer science. Two first-year stages also run a distance-learning version (version 2).
_LEVELS = {1: "L1", 2: "L2", 3: "L3", 4: "M1", 5: "M2"}
_DISTANCE = {"L1DROI", "L1PSY"}
_WEIGHTS = {
    "L1INFO": 9, "L2INFO": 7, "L3INFO": 6, "M1INFO": 4, "M2INFO": 3,
    "L1MATH": 6, "L2MATH": 4, "L3MATH": 3,
    "L1ECO": 10, "L2ECO": 7, "L3ECO": 6,
    "L1DROI": 12, "L2DROI": 8, "L3DROI": 7,
    "L1PSY": 10, "L2PSY": 7, "L3PSY": 6,
}  # fmt: skip


def _shared(level: int) -> tuple[Element, Element]:
    name = _LEVELS[level]
    return (
        Element(f"ANG{level}01", f"Anglais {name}", f"Anglais {name}", "UE", "LSH"),
        Element(f"PPP{level}01", f"Projet personnel et professionnel {name}", "PPP", "UE", "LSH"),
    )


def _stage_elements(
    prefix: str, level: int, cmp: str, subjects: tuple[str, ...], stage_label: str
) -> list[Element]:
    elements = []
    count = MANDATORY + FIRST_LIST + SECOND_LIST
    for n in range(1, count + 1):
        subject = subjects[(n - 1 + level * 3) % len(subjects)]
        part = (n - 1) // len(subjects) + 1
        title = subject if part == 1 else f"{subject} {part}"
        nature = "UE" if n <= MANDATORY else "MATI"
        lib = f"{title} ({stage_label})"[:60]
        elements.append(Element(f"{prefix}{level}{n:02d}", lib, title[:25], nature, cmp))
    return elements


@cache
def catalogue() -> University:
    """The university every workload draws from (immutable, built once)."""
    stages: list[Stage] = []
    elements: dict[str, Element] = {}
    for level in _LEVELS:
        for shared in _shared(level):
            elements[shared.cod_elp] = shared
    for discipline, prefix, cmp, diploma, subjects in _TRACKS:
        levels = (1, 2, 3, 4, 5) if discipline == "INFO" else (1, 2, 3)
        for level in levels:
            cod_etp = f"{_LEVELS[level]}{discipline}"
            label = f"{_LEVELS[level]} {diploma}"
            own = _stage_elements(prefix, level, cmp, subjects, label)
            elements.update((e.cod_elp, e) for e in own)
            codes = tuple(e.cod_elp for e in own)
            versions: tuple[tuple[int, str], ...] = ((1, f"{label} (présentiel)"),)
            if cod_etp in _DISTANCE:
                versions += ((2, f"{label} (à distance)"),)
            master = level >= 4
            stages.append(
                Stage(
                    cod_etp=cod_etp,
                    label=label,
                    cod_dip=f"{'M' if master else 'L'}{discipline}"[:7],
                    cod_cmp=cmp,
                    versions=versions,
                    mandatory=codes[:MANDATORY],
                    first_list=codes[MANDATORY : MANDATORY + FIRST_LIST],
                    second_list=codes[MANDATORY + FIRST_LIST :],
                    shared=tuple(e.cod_elp for e in _shared(level)),
                )
            )
    late = Element("UEL301", "Intelligence artificielle et société", "IA et société", "UE", "LSH")
    elements[late.cod_elp] = late
    return University(_FACULTIES, tuple(stages), elements, dict(_WEIGHTS), late)
