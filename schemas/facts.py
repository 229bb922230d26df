"""Membership facts: "user U should be a member because of source S", with provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import with_config

from schemas._types import CONTRACT
from schemas.lineage import SourceRef

__all__ = ["FactKind", "MembershipFact"]


class FactKind(StrEnum):
    """What a fact is about; the course mapping turns it into (course, role) pairs."""

    ELEMENT = "element"  # a followed contract element under a valid administrative enrolment
    STAGE = "stage"  # a valid administrative enrolment in a stage version
    MANUAL = "manual"  # a manual source (CSV batch, cohort rule, meta link) naming course and role


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class MembershipFact:
    """A reason for a membership. Identity is every field except ``provenance`` and the dates.

    ``provenance`` lists the change that asserted (or retracted) the fact first, then the
    source rows supporting it: the contract element and the administrative enrolment (for a
    manual fact: the file and line it was read from).

    ``timestart`` / ``timeend`` (unix seconds, 0 = open) are the enrolment dates a manual
    source asks for; ``None`` means the site's defaults. They are not part of the identity: a
    manual fact asserted again with other dates replaces the one held.
    """

    user: str
    kind: FactKind
    cod_anu: str
    cod_etp: str | None = None
    cod_vrs_vet: int | None = None
    cod_elp: str | None = None
    course: str | None = None
    role: str | None = None
    origin: str = "apogee"
    cod_ind: int | None = None
    provenance: tuple[SourceRef, ...] = field(default=(), compare=False)
    timestart: int | None = field(default=None, compare=False)
    timeend: int | None = field(default=None, compare=False)
