"""Course events: what flows on the course-keyed topic between the stages of the pipeline.

One topic, keyed by course ``idnumber``, carries everything that changes a course's state,
so a course's desired state, ledger and settings are only ever written by the worker that
owns its partition, in the order the events were published:

* :class:`FactsChanged` — membership facts routed to the course (from the student view or a
  manual source): the desired state changes.
* :class:`CourseAdopted` — the applier touched the course for the first time: its Moodle id,
  and the enrolments it found there that it did not make (recorded as foreign, never touched).
* :class:`WritesSent` — write-ahead: the applier is about to send these commands to Moodle
  (published and acknowledged before the call). Until a result settles them, their outcome
  is unknown, and that is kept in the course's state, not only in the process that sent them.
* :class:`CommandsApplied` — Moodle accepted these commands: the ledger changes.
* :class:`WritesSettled` — Moodle answered that these users' writes were not applied.
* :class:`EnrolmentsReleased` — an operator released enrolments from the reconciler's
  ownership (automatic → manual): they become foreign.
* :class:`EnrolmentsObserved` — a drift check found Moodle different from the ledger for
  these users (``reconciler diff --repair``, or the worker's periodic check with repair on):
  the ledger's owned entries take what Moodle showed, and the course is planned again.
* :class:`EnrolmentMethodsFound` — the cut-over from the Database method (``reconciler
  cutover``): users the Database method holds alone may be enrolled beside it; manual
  enrolments the reconciler did not make are foreign.

:class:`CourseMeta` is the per-course record the course agent keeps (one small value per
course, never a list of its members).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, with_config

from schemas._types import CONTRACT, MESSAGE
from schemas.commands import MoodleCommand
from schemas.enrolment import EnrolmentTuple
from schemas.facts import MembershipFact

__all__ = [
    "COURSE_EVENT",
    "AppliedCommand",
    "CommandsApplied",
    "CourseAdopted",
    "CourseEvent",
    "CourseMeta",
    "EnrolmentMethodsFound",
    "EnrolmentsObserved",
    "EnrolmentsReleased",
    "FactChange",
    "FactsChanged",
    "ForeignEnrolment",
    "ObservedEnrolment",
    "WriteInDoubt",
    "WritesSent",
    "WritesSettled",
]


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class FactChange:
    """One fact asserted or retracted for (course, role); the course is the event's."""

    role: str
    fact: MembershipFact
    asserted: bool


class FactsChanged(BaseModel):
    model_config = MESSAGE
    type: Literal["facts"] = "facts"
    course: str
    changes: tuple[FactChange, ...]


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class ForeignEnrolment:
    """An enrolment found in Moodle that the reconciler did not make."""

    user: str
    enrolment: EnrolmentTuple
    moodle_user_id: int | None = None


class CourseAdopted(BaseModel):
    model_config = MESSAGE
    type: Literal["adopted"] = "adopted"
    course: str
    moodle_course_id: int
    foreign: tuple[ForeignEnrolment, ...] = ()
    at: datetime


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class AppliedCommand:
    command: MoodleCommand
    moodle_user_id: int | None = None


class CommandsApplied(BaseModel):
    model_config = MESSAGE
    type: Literal["applied"] = "applied"
    course: str
    moodle_course_id: int
    applied: tuple[AppliedCommand, ...]
    at: datetime
    writer: str = ""  # the applier that sent them ("" before write-ahead records existed)


class WritesSent(BaseModel):
    """Write-ahead record of a call: published, and acknowledged by Kafka, before the commands
    go to Moodle. A worker killed after Moodle applied them but before it published the result
    would otherwise take the knowledge with it: the worker that owns the course next (the same
    one restarted, or another after a rebalance) finds the writes still in doubt and, if its
    plan leaves those users alone, sets Moodle back to what the ledger says."""

    model_config = MESSAGE
    type: Literal["sent"] = "sent"
    course: str
    moodle_course_id: int
    sent: tuple[AppliedCommand, ...]
    at: datetime
    writer: str  # the applier that sends them (one id per process start)


class WritesSettled(BaseModel):
    """These users' writes (sent at ``at`` or before by ``writer``) are no longer in doubt:
    Moodle answered that they were not applied (rejected, or failed before any effect), or
    the ledger shows there is nothing to set back."""

    model_config = MESSAGE
    type: Literal["settled"] = "settled"
    course: str
    users: tuple[str, ...]
    at: datetime
    writer: str = ""


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class WriteInDoubt:
    """One user's write sent to Moodle whose outcome no result has settled yet (the doubts
    table, keyed like the ledger: one entry per course and user)."""

    course: str
    sent: AppliedCommand
    moodle_course_id: int
    at: datetime
    writer: str


class EnrolmentsReleased(BaseModel):
    """Automatic → manual: these users' enrolments (all the course's owned ones if ``users``
    is empty and ``everyone`` is set) stop being the reconciler's; Moodle is not changed."""

    model_config = MESSAGE
    type: Literal["released"] = "released"
    course: str
    users: tuple[str, ...] = ()
    everyone: bool = False
    by: str = ""
    at: datetime


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class ObservedEnrolment:
    """One user's enrolment as a drift check read it in Moodle (highest known role)."""

    user: str
    role: str
    suspended: bool
    moodle_user_id: int | None = None


class EnrolmentsObserved(BaseModel):
    """Drift repair: what Moodle showed for ``found`` users, and which ``absent`` users it had
    no enrolment for. The course agent sets the ledger's *owned* entries of those users to it
    (never a foreign one) and the course is planned again: its commands bring Moodle back to
    the desired state, through the guard, audited like any other."""

    model_config = MESSAGE
    type: Literal["observed"] = "observed"
    course: str
    found: tuple[ObservedEnrolment, ...] = ()
    absent: tuple[str, ...] = ()
    by: str = ""
    at: datetime


class EnrolmentMethodsFound(BaseModel):
    """Cut-over from the Database method, from Moodle's per-enrolment methods (a custom report
    on the Course participants source). ``database_only`` users hold their enrolment through
    the Database method alone, with no manual enrolment: their foreign ledger entries are
    dropped, so the plan enrols them through the manual instance beside it. ``manual`` users
    hold a manual enrolment the reconciler did not make (a teacher's, which
    ``enrol_manual_enrol_users`` would update): recorded as foreign when the ledger does not
    know them. Owned entries are never changed."""

    model_config = MESSAGE
    type: Literal["methods"] = "methods"
    course: str
    database_only: tuple[str, ...] = ()
    manual: tuple[ForeignEnrolment, ...] = ()
    by: str = ""
    at: datetime


CourseEvent = Annotated[
    FactsChanged
    | CourseAdopted
    | WritesSent
    | CommandsApplied
    | WritesSettled
    | EnrolmentsReleased
    | EnrolmentsObserved
    | EnrolmentMethodsFound,
    Field(discriminator="type"),
]
COURSE_EVENT: TypeAdapter[CourseEvent] = TypeAdapter(CourseEvent)


@with_config(CONTRACT)
@dataclass(frozen=True, slots=True)
class CourseMeta:
    """Per-course record: Moodle id once adopted, operator settings (pause, approvals)."""

    course: str
    moodle_course_id: int | None = None
    adopted_at: datetime | None = None
    paused: bool = False
    approved_at: datetime | None = None
    rejected_at: datetime | None = None
