"""The cohort stage (on when ``RECONCILER_COHORT_TEMPLATE`` is set): administrative-enrolment
cohorts kept in Moodle, one per stage version and year, so Moodle's cohort sync enrols the
promotions in the courses that use them.

::

    students agent ──stage facts──► <app>-cohort-events (keyed by cohort idnumber)
                                        │ cohorts agent (CourseView over the cohort tables)
                                        ▼
    cohort-desired, cohort-ledger, cohort-courses tables ──► cohort applier ──► Moodle cohorts
              ▲                                                     │             audit topic
              └──────── results (adopted, applied) ◄────────────────┘

It is the course machinery over other tables and another Moodle adapter: stage facts are
routed by :func:`~streams.domain.cohorts.cohort_mapping` (the template names the cohort),
the desired state holds the members, and the :class:`~streams.applier.Applier` plans with
:func:`~streams.domain.cohorts.cohort_policy` — members added at once, removed (out of the
cohort) after the grace window and through the mass-removal guard, a user missing from Moodle
parked, every change audited (``ws_function`` ``core_cohort_add_cohort_members`` /
``core_cohort_delete_cohort_members``, the cohort idnumber in the ``course`` field). A cohort
is created the first time it has a member (:class:`CohortGateway`); members someone else put
in a cohort that already existed are recorded as foreign and never removed.

Operator commands for a cohort (``reconciler approve --cohort …``) travel on the cohort
topic itself, in order with its events; one for a cohort the stage does not know is dropped
(it would otherwise create the cohort).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.audit import AuditRecord
from schemas.commands import CommandKind
from schemas.control import ControlCommand
from schemas.course_events import CourseEvent, FactChange, FactsChanged, WritesSent
from streams.applier.applier import Applier, ApplierConfig
from streams.applier.gateway import Found, MoodleGateway, Roster
from streams.domain.cohorts import COHORT_ROLE, cohort_mapping, cohort_policy
from streams.domain.desired import route
from streams.domain.fold import Effect
from streams.kafka.admin import TopicSpec
from streams.moodle import (
    CohortMember,
    CohortMemberIds,
    Enrolment,
    ItemOutcome,
    MoodleClient,
    NewCohort,
    Unenrolment,
)
from streams.moodle.errors import InvalidParameter
from streams.pipeline.codec import decode_event, encode_event
from streams.pipeline.handlers import CourseView
from streams.pipeline.state import CourseTables

log = logging.getLogger(__name__)

__all__ = [
    "COHORT_CAPABILITIES",
    "CohortGateway",
    "CohortStage",
    "Cohorts",
    "cohort_events",
    "cohort_topic_specs",
]

COHORT_CAPABILITIES = ("moodle/cohort:manage", "moodle/cohort:assign", "moodle/cohort:view")
"""What the service user needs besides ``REQUIRED_CAPABILITIES`` when the stage is on."""

TABLES = ("cohort-desired", "cohort-ledger", "cohort-courses", "cohort-control", "cohort-doubts")
_FUNCTIONS = {
    CommandKind.ENROL: "core_cohort_add_cohort_members",
    CommandKind.REACTIVATE: "core_cohort_add_cohort_members",
    CommandKind.UNENROL: "core_cohort_delete_cohort_members",
}


def cohort_events(app_id: str) -> str:
    return f"{app_id}-cohort-events"


def cohort_topic_specs(app_id: str, partitions: int, days: int) -> list[TopicSpec]:
    events = TopicSpec.history(cohort_events(app_id), partitions, days)
    tables = [TopicSpec.compacted(f"{app_id}-{t}-changelog", partitions) for t in TABLES]
    return [events, *tables]


class CohortGateway(MoodleGateway):
    """The applier's Moodle adapter, for cohorts: a "course" is a cohort (found by idnumber,
    created when missing), an enrolment a membership."""

    def __init__(self, client: MoodleClient, user_field: str, create: bool = True) -> None:
        super().__init__(client, user_field, {COHORT_ROLE: 0})
        self.create = create  # False in shadow mode: a missing cohort is only reported

    async def course_id(self, course: str) -> int | None:
        if course not in self._courses:
            found = await self._find(course)
            if found is None and self.create:
                try:
                    created = await self.client.core_cohort_create_cohorts(
                        [NewCohort(course, course, description=_DESCRIPTION)]
                    )
                    found = created[0].id
                    log.info("cohort %s created (id %d)", course, found)
                except InvalidParameter:  # created meanwhile (or a lost answer): look again
                    found = await self._find(course)
            if found is None:
                return None
            self._courses[course] = found
        return self._courses[course]

    async def _find(self, idnumber: str) -> int | None:
        for cohort in await self.client.core_cohort_search_cohorts(idnumber):
            if cohort.idnumber == idnumber:
                return cohort.id
        return None

    async def roster(self, course: str, moodle_course_id: int) -> Roster:
        members = await self.client.core_cohort_get_cohort_members([moodle_course_id])
        ids = [u for m in members for u in m.userids]
        users = await self.client.core_user_get_users_by_field("id", ids) if ids else []
        found = tuple(Found(self._key_of(u), u.id, COHORT_ROLE, False) for u in users)
        for item in found:
            if item.user is not None:
                self._users.setdefault(item.user, item.moodle_user_id)
        return Roster(moodle_course_id, found)

    async def enrol(self, rows: Sequence[Enrolment]) -> list[ItemOutcome[Enrolment]]:
        if not rows:
            return []
        members = [CohortMember(r.courseid, r.userid, "id", "id") for r in rows]
        outcomes = await self.client.core_cohort_add_cohort_members(members)
        return [ItemOutcome(r, o.status, o.error) for r, o in zip(rows, outcomes, strict=True)]

    async def unenrol(self, rows: Sequence[Unenrolment]) -> list[ItemOutcome[Unenrolment]]:
        if not rows:
            return []
        members = [CohortMemberIds(r.courseid, r.userid) for r in rows]
        outcomes = await self.client.core_cohort_delete_cohort_members(members)
        return [ItemOutcome(r, o.status, o.error) for r, o in zip(rows, outcomes, strict=True)]

    async def unassign(self, role: str, moodle_user_id: int, moodle_course_id: int) -> None:
        return None  # a cohort member has no role


_DESCRIPTION = (
    "Administrative enrolments (APOGÉE INS_ADM_ETP) of this stage version and year, kept in "
    "step by the enrolment reconciler. Do not edit by hand."
)


class _CohortApplier(Applier):
    """The course applier's gauges (pending, held, parked) are the courses'; this one leaves
    them alone. Its held and parked changes are on the audit topic (``held``, ``parked``)."""

    def _gauges(self) -> None:
        return None


class Cohorts:
    """The stage's logic, without faust (tested with dict tables): routing stage facts, the
    cohort topic's records, and the applier's outbox. ``send`` hands a record to the cohort
    topic (keyed by cohort); ``audit_out`` writes audit records."""

    def __init__(
        self,
        tables: CourseTables,
        gateway: CohortGateway,
        config: ApplierConfig,
        template: str,
        send: Callable[[bytes, bytes], Awaitable[None]],
        send_soon: Callable[[bytes, bytes], None],
        audit_out: Callable[[AuditRecord], Awaitable[None]],
        shadow_out: Callable[[AuditRecord], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        send_acked: Callable[[bytes, bytes], Awaitable[None]] | None = None,
    ) -> None:
        self.tables = tables
        self.mapping = cohort_mapping(template)
        self._send, self._send_soon = send, send_soon
        self._send_acked = send_acked or send
        self._audit_out, self._shadow_out = audit_out, shadow_out
        self.applier = _CohortApplier(tables, self, gateway, config, clock=clock, wall=wall)
        self.view = CourseView(tables, self.applier, clock=wall)

    # -- in: stage facts from the students agent, events and commands on the cohort topic ----
    def on_effects(self, effects: Iterable[Effect]) -> None:
        by_cohort: dict[str, list[FactChange]] = defaultdict(list)
        for change in route(effects, self.mapping):
            by_cohort[change.course].append(FactChange(change.role, change.fact, change.asserted))
        for cohort, changes in by_cohort.items():
            event = FactsChanged(course=cohort, changes=tuple(changes))
            self._send_soon(cohort.encode(), encode_event(event))

    def on_record(self, value: bytes) -> None:
        try:
            if b'"action"' in value[:200]:
                self._control(ControlCommand.model_validate_json(value))
            else:
                self.view.on_event(decode_event(value))
        except ValueError:
            log.exception("undecodable record on the cohort topic dropped")

    def _control(self, command: ControlCommand) -> None:
        if command.course is not None and self.tables.meta(command.course) is None:
            log.warning("control %s for unknown cohort %s dropped", command.action, command.course)
            return
        self.view.on_control(command)

    # -- out: the applier's results and audit records (its Outbox) -----------------------------
    async def publish(self, event: CourseEvent) -> None:
        await self._send(event.course.encode(), encode_event(event))

    async def sent(self, events: Sequence[WritesSent]) -> None:
        """Write-ahead of the cohort writes (see the course applier's): acknowledged first."""
        for event in events:
            await self._send_acked(event.course.encode(), encode_event(event))

    async def audit(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            await self._audit_out(_named(record))

    async def shadow(self, records: Sequence[AuditRecord]) -> None:
        """Shadow mode: the cohort changes that would have been made (outcome ``dry_run``)."""
        for record in records:
            await self._shadow_out(_named(record))


def _named(record: AuditRecord) -> AuditRecord:
    """The record with the cohort web-service function the change is (or would be) made by."""
    if record.ws_function is None:
        return record
    function = _FUNCTIONS.get(record.command.kind, record.ws_function)
    return record.model_copy(update={"ws_function": function})


class CohortStage:
    """Wires :class:`Cohorts` into a :class:`~streams.pipeline.app.Pipeline`: the cohort
    topic, the five tables, the agent, the applier's task and the rebalance signals."""

    def __init__(self, pipeline: Any, template: str) -> None:
        self.pipeline = pipeline
        w = pipeline.config.worker
        app = pipeline.app
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.topic = app.topic(cohort_events(w.app_id), partitions=w.partitions, **raw)
        tables = CourseTables(*(self._table(name) for name in TABLES))
        config = ApplierConfig(
            policy=cohort_policy(w.plan_policy()),
            park_retry_s=w.park_retry_s,
            retry_base_s=w.retry_base_s,
            retry_cap_s=w.retry_cap_s,
            max_courses_per_cycle=w.max_courses_per_cycle,
            cycles_in_flight=1,
            shadow=w.shadow,  # shadow mode: no cohort is created or changed either
        )
        self.flow = Cohorts(
            tables,
            CohortGateway(pipeline.moodle, w.user_field, create=not w.shadow),
            config,
            template,
            self._send,
            self._send_soon,
            self._audit,
            self._shadow,
            send_acked=self._send_acked,
        )
        pipeline.students_view.also.append(self.flow.on_effects)
        app.agent(self.topic, name="cohorts", concurrency=1)(self._agent)
        app.task(self.flow.applier.run)
        app.on_rebalance_complete.connect(self._on_ready)
        app.on_partitions_revoked.connect(self._on_revoked)

    def _table(self, name: str) -> Any:
        w = self.pipeline.config.worker
        options = {
            "write_buffer_size": w.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 2,
            "block_cache_size": w.rocksdb_block_cache_mb * 2**20,
            "block_cache_compressed_size": 0,
        }
        return self.pipeline.app.Table(
            name, partitions=w.partitions, key_type=bytes, value_type=bytes, options=options
        )

    async def _agent(self, stream: Any) -> None:
        async for event in stream.events():
            self.flow.on_record(event.message.value or b"")

    # Buffered, as the course outbox's (faust's producer batches them; commits flush it).
    async def _send(self, key: bytes, value: bytes) -> None:
        self.topic.send_soon(key=key, value=value)

    async def _send_acked(self, key: bytes, value: bytes) -> None:
        await (await self.topic.send(key=key, value=value))

    def _send_soon(self, key: bytes, value: bytes) -> None:
        self.topic.send_soon(key=key, value=value)

    async def _audit(self, record: AuditRecord) -> None:
        self.pipeline.audit_topic.send_soon(
            key=record.command.course.encode(), value=record.model_dump_json().encode()
        )

    async def _shadow(self, record: AuditRecord) -> None:
        self.pipeline.shadow_topic.send_soon(
            key=record.command.course.encode(), value=record.model_dump_json().encode()
        )

    async def _on_ready(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.flow.applier.sweep()
        self.flow.applier.resume()

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.flow.applier.pause()
