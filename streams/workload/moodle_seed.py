"""The Moodle emulator's seed that matches a generated year (docs/moodle-emulator.md, seed format).

What a university's Moodle holds before the reconciler starts: one user per student
(``idnumber`` = ``COD_ETU``, as an LDAP/CAS account sync would create it) except the one the
demo creates later, one course per element (``idnumber`` = ``{cod_anu}-{cod_elp}``, one
enabled manual instance, in its faculty's category) except the elective opened mid-term, and
the reconciler's service account and token. The token's capabilities are those of the
example seed's ``reconciler`` token, read from ``streams/emulator/seed_example.json`` so that
both stay one definition.

>>> from streams.workload.generator import generate_year
>>> seed = emulator_seed(generate_year(40, seed=1), token="0" * 32)
>>> len(seed["courses"]) == len(catalogue().elements) - 1
True
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from streams.workload.generator import Part, Student, Year
from streams.workload.university import Element, catalogue

__all__ = [
    "COURSE_ID_BASE",
    "USER_ID_BASE",
    "course_spec",
    "emulator_seed",
    "moodle_user_id",
    "user_spec",
]

USER_ID_BASE = 1000  # Moodle user id = base + index of the student in the year
COURSE_ID_BASE = 100  # Moodle course id = base + index of the element in the catalogue
_CATEGORY_BASE = 10
_EXAMPLE = Path(__file__).resolve().parents[1] / "emulator" / "seed_example.json"


@cache
def _example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_EXAMPLE.read_text(encoding="utf-8"))
    return data


def _service_account(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The example's ``reconciler`` token and its user (capabilities live on one of them)."""
    example = _example()
    spec = next(t for t in example["tokens"] if t.get("name") == "reconciler")
    user = next(u for u in example["users"] if u["id"] == spec["userid"])
    return copy.deepcopy(user), {**copy.deepcopy(spec), "token": token}


def moodle_user_id(year: Year, student: Student) -> int:
    return USER_ID_BASE + student.cod_ind - year.cod_ind_base


def user_spec(year: Year, student: Student) -> dict[str, Any]:
    """A student's Moodle account (seed format; also the body of ``POST /_emulator/users``)."""
    return {
        "id": moodle_user_id(year, student),
        "username": student.username,
        "firstname": student.first_name,
        "lastname": student.usage_name,
        "email": student.email,
        "idnumber": str(student.cod_etu),
        "auth": "cas",
    }


def _course_ids() -> dict[str, int]:
    return {elp: COURSE_ID_BASE + i for i, elp in enumerate(sorted(catalogue().elements))}


def course_spec(year: Year, element: Element) -> dict[str, Any]:
    """A course (seed format; also the body of ``POST /_emulator/courses``)."""
    return {
        "id": _course_ids()[element.cod_elp],
        "idnumber": year.course(element.cod_elp),
        "shortname": f"{element.cod_elp}-{year.cod_anu}",
        "fullname": f"{element.lib_elp} {year.cod_anu}-{int(year.cod_anu) + 1}",
    }


def emulator_seed(year: Year, token: str) -> dict[str, Any]:
    """The whole seed: site, categories, roles, users, courses, the reconciler's token."""
    example = _example()
    uni = year.university
    service_user, token_spec = _service_account(token)
    categories = [{"id": 1, "name": "Divers", "idnumber": ""}]
    category_of: dict[str, int] = {}
    for i, faculty in enumerate(uni.faculties):
        category_of[faculty.cod_cmp] = _CATEGORY_BASE + i
        categories.append(
            {"id": _CATEGORY_BASE + i, "name": faculty.name, "idnumber": faculty.cod_cmp}
        )
    users = [
        {"id": 2, "username": "admin", "firstname": "Admin", "lastname": "User"},
        service_user,
        *(user_spec(year, s) for s in year.students if s.part is not Part.NOT_IN_MOODLE),
    ]
    courses = [
        {**course_spec(year, e), "category": category_of[e.cod_cmp]}
        for _, e in sorted(uni.elements.items())
        if e is not uni.late
    ]
    site = {**example.get("site", {}), "sitename": "Université Exemple (demo, emulated)"}
    return {
        "site": site,
        "categories": categories,
        "roles": copy.deepcopy(example.get("roles", [])),
        "users": users,
        "courses": courses,
        "tokens": [token_spec],
    }
