"""The course agent's part of the cut-over from the Database method (``reconciler cutover``).

An :class:`~schemas.course_events.EnrolmentMethodsFound` event (built by the operator tool from
Moodle's per-enrolment methods) goes through the pure
:func:`~streams.domain.cutover.beside_database`: the foreign entries of users the Database
method holds alone are dropped, manual enrolments the ledger did not know become foreign; the
course is planned again, so a writing worker enrols the Database-only users through the manual
instance beside their enrolment (a worker in shadow mode says it would).
"""

from __future__ import annotations

import logging
from typing import Protocol

from schemas.course_events import EnrolmentMethodsFound
from streams.domain.cutover import beside_database
from streams.pipeline.state import CourseTables, ledger_key

log = logging.getLogger(__name__)

__all__ = ["methods_found"]


class Marks(Protocol):
    def mark(self, course: str) -> None: ...


def methods_found(tables: CourseTables, event: EnrolmentMethodsFound, applier: Marks) -> None:
    course = event.course
    users = [*event.database_only, *(f.user for f in event.manual)]
    before = tables.ledger_for(course, users)
    meta = tables.meta(course)
    after = beside_database(
        before,
        event.database_only,
        event.manual,
        meta.moodle_course_id if meta is not None else None,
        event.at,
    )
    dropped = [u for u in before.entries if u not in after.entries]
    for user in dropped:
        del tables.ledger_table[ledger_key(course, user)]
    added = [e for u, e in after.entries.items() if u not in before.entries]
    for entry in added:
        tables.put_ledger(entry)
    log.info(
        "cut-over in %s by %s: %d Database-only enrolment(s) may be enrolled beside, "
        "%d manual one(s) recorded as foreign",
        course,
        event.by,
        len(dropped),
        len(added),
    )
    applier.mark(course)
