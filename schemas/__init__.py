"""Data contracts: pydantic v2 models shared by every part of the reconciler.

* :mod:`schemas.debezium` — Debezium envelopes for ``INDIVIDU``, ``INS_ADM_ETP``,
  ``IND_CONTRAT_ELP``.
* :mod:`schemas.lineage` — :class:`SourceRef`, the provenance of a fact.
* :mod:`schemas.facts` — :class:`MembershipFact`.
* :mod:`schemas.mapping` — course-mapping rules.
* :mod:`schemas.enrolment` — desired enrolments, the applied ledger, the full enrolment tuple.
* :mod:`schemas.commands` — domain-level Moodle commands.
* :mod:`schemas.audit`, :mod:`schemas.deadletter` — audit and dead-letter records.

Values held by the hundred thousand (facts, desired, ledger, commands) are frozen slotted
dataclasses validated through ``pydantic.TypeAdapter`` (3.5x less memory than ``BaseModel``
instances); transient messages are frozen ``BaseModel`` s. Both are strict and export JSON
Schemas (``reconciler schemas export``).
"""

from schemas.audit import AuditRecord, Outcome
from schemas.commands import CommandKind, MoodleCommand
from schemas.deadletter import DeadLetterReason, DeadLetterRecord
from schemas.debezium import (
    ChangeEnvelope,
    IndContratElpChange,
    IndContratElpRow,
    IndividuChange,
    IndividuRow,
    InsAdmEtpChange,
    InsAdmEtpRow,
    OracleSource,
    PostgresSource,
    Table,
    parse_change,
)
from schemas.enrolment import DesiredEnrolment, EnrolmentStatus, EnrolmentTuple, LedgerEntry
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from schemas.mapping import CourseMappingRule, CourseTarget

__all__ = [
    "AuditRecord",
    "ChangeEnvelope",
    "CommandKind",
    "CourseMappingRule",
    "CourseTarget",
    "DeadLetterReason",
    "DeadLetterRecord",
    "DesiredEnrolment",
    "EnrolmentStatus",
    "EnrolmentTuple",
    "FactKind",
    "IndContratElpChange",
    "IndContratElpRow",
    "IndividuChange",
    "IndividuRow",
    "InsAdmEtpChange",
    "InsAdmEtpRow",
    "LedgerEntry",
    "MembershipFact",
    "MoodleCommand",
    "OracleSource",
    "Outcome",
    "PostgresSource",
    "SourceRef",
    "Table",
    "parse_change",
]
