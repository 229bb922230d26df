"""Pure domain core: APOGÉE changes → membership facts → desired enrolments → Moodle commands.

No I/O and no frameworks (an import-linter contract in ``pyproject.toml`` forbids faust,
Kafka, HTTP and Prometheus clients here). The pieces, in the order data flows:

* :mod:`~streams.domain.ingest` — Debezium record → :class:`RowChange` (or a rejection).
* :mod:`~streams.domain.positions` — source-position order (LSN/SCN, then txId).
* :mod:`~streams.domain.fold` — per student: ``fold(state, change, policy) -> (state, effects)``.
* :mod:`~streams.domain.derive` — the rules: rows → membership facts.
* :mod:`~streams.domain.mapping` — fact → (course, role) targets.
* :mod:`~streams.domain.desired` — per course: (user, role) → supporting facts.
* :mod:`~streams.domain.plan` — ``plan(desired, ledger, policy, now)`` → commands;
  :mod:`~streams.domain.guard` — the mass-removal guard.
* :mod:`~streams.domain.ledger` — the applied ledger and the effect of a command on it.
* :mod:`~streams.domain.policy` — the site's choices.
"""

from streams.domain.changes import RowChange, Tombstone
from streams.domain.desired import CourseChange, CourseDesired, apply_changes, empty_desired, route
from streams.domain.fold import Effect, FactAsserted, FactRetracted, fold, fold_all
from streams.domain.ingest import KafkaRef, Rejected, decode
from streams.domain.ledger import CourseLedger, apply_all, empty_ledger
from streams.domain.mapping import CourseMapping, build_mapping, targets
from streams.domain.plan import CoursePlan, GlobalLoad, admit_global, plan
from streams.domain.policy import (
    NO_APPROVALS,
    Approvals,
    FoldPolicy,
    GuardPolicy,
    PlanPolicy,
    RemovalMode,
)
from streams.domain.student import StudentState, empty_student

__all__ = [
    "NO_APPROVALS",
    "Approvals",
    "CourseChange",
    "CourseDesired",
    "CourseLedger",
    "CourseMapping",
    "CoursePlan",
    "Effect",
    "FactAsserted",
    "FactRetracted",
    "FoldPolicy",
    "GlobalLoad",
    "GuardPolicy",
    "KafkaRef",
    "PlanPolicy",
    "Rejected",
    "RemovalMode",
    "RowChange",
    "StudentState",
    "Tombstone",
    "admit_global",
    "apply_all",
    "apply_changes",
    "build_mapping",
    "decode",
    "empty_desired",
    "empty_ledger",
    "empty_student",
    "fold",
    "fold_all",
    "plan",
    "route",
    "targets",
]
