"""Async Moodle web-service client: the only module here that talks HTTP.

Every call: rate limit (token bucket) → concurrency slot → POST form to
``/webservice/rest/server.php`` (``wsfunction``/format in the query string, token in the body
so it never reaches an access log) → typed error or value. The number of calls in flight
follows an adaptive limit (:mod:`streams.moodle.concurrency`): as many as the site serves at
once, found from latency. Transient errors are retried with exponential backoff and full
jitter, and lower the rate (:class:`~streams.moodle.pacing.AdaptivePacer`). A call that times
out may still be running on the site: its slot stays taken and it is not re-sent before
``timeout_hold_s``; ``call()`` never returns while a copy it sent may still be running.

Batched writes are cut to fit ``max_input_vars`` and bisected on item errors (see
:mod:`streams.moodle.batching`). Rows are split into lanes by course: a course's rows stay in
one lane, applied in order (Moodle's "last row wins" holds across batches too), and lanes run
concurrently within the adaptive limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from streams.moodle.batching import ItemOutcome, Status, apply_bisecting, chunks, max_rows
from streams.moodle.concurrency import ConcurrencyLimiter, ConcurrencySnapshot, Ticket
from streams.moodle.encoding import Param, count_vars, encode_params
from streams.moodle.errors import (
    CallRejected,
    InvalidParameter,
    MoodleBug,
    MoodleError,
    NoManualInstance,
    PhpFatalError,
    RateLimited,
    RecordNotFound,
    RequestTimeout,
    RetryLater,
    ServerError,
    TransportError,
    error_from_body,
)
from streams.moodle.limits import Backoff, Clock, Random, Sleep, TokenBucket
from streams.moodle.models import (
    Cohort,
    CohortMember,
    CohortMemberIds,
    CohortMembers,
    EnrolledUser,
    Enrolment,
    EnrolmentMethod,
    GroupMember,
    GroupMembers,
    MetaLink,
    MoodleCourse,
    MoodleGroup,
    MoodleUser,
    NewCohort,
    RoleAssignment,
    SiteInfo,
    Unenrolment,
    UserCourse,
    WsWarning,
)
from streams.moodle.pacing import AdaptivePacer, PacerSnapshot
from streams.moodle.settings import MoodleSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["CALL_OUTCOMES", "CallObserver", "MoodleClient", "call_outcome"]

CallObserver = Callable[[str, str, float], None]
"""Told of every HTTP round trip: ``(wsfunction, outcome, seconds)``, outcome one of
:data:`CALL_OUTCOMES`. The worker wires it to its metrics; the client knows nothing of them."""

CALL_OUTCOMES = ("ok", "rejected", "retry_later", "timeout", "network", "bug")


def call_outcome(error: MoodleError | None) -> str:
    """The bounded outcome of one round trip (a metric label: never the error's text)."""
    if error is None:
        return "ok"
    if isinstance(error, RequestTimeout):
        return "timeout"
    if isinstance(error, TransportError):
        return "network"
    if isinstance(error, RetryLater):
        return "retry_later"
    if isinstance(error, MoodleBug):
        return "bug"
    return "rejected"


class MoodleClient:
    """One Moodle site. Use as ``async with MoodleClient(settings) as moodle: ...``."""

    def __init__(
        self,
        settings: MoodleSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rand: Random = random.random,
        observer: CallObserver | None = None,
    ) -> None:
        self._settings = settings
        self._observer = observer
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_concurrency,
                max_keepalive_connections=settings.max_concurrency,
            ),
            verify=settings.verify_tls,
        )
        self._limiter = ConcurrencyLimiter(
            settings.max_concurrency,
            initial=settings.initial_concurrency,
            adaptive=settings.adaptive_concurrency,
            tolerance=settings.concurrency_tolerance,
            probe_rounds=settings.concurrency_probe_rounds,
            window_s=settings.concurrency_window_s,
            clock=clock,
        )
        self._bucket = TokenBucket(
            settings.rate_per_s, settings.rate_burst, clock=clock, sleep=sleep
        )
        self._pacer = AdaptivePacer(
            settings.rate_per_s,
            min_rate=settings.min_rate_per_s,
            latency_factor=settings.latency_factor,
            latency_floor_s=settings.latency_floor_s,
            recovery_step=settings.recovery_step_per_s,
            window_s=settings.latency_window_s,
            enabled=settings.latency_backoff_enabled,
            follow_latency=settings.rate_follows_latency,
            clock=clock,
        )
        self._backoff = Backoff(settings.backoff_base_s, 2.0, settings.backoff_cap_s)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._site_info: SiteInfo | None = None
        self._holds: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"MoodleClient(url={self._settings.url!r})"

    def pacing(self) -> PacerSnapshot:
        """Effective call rate and why (for logs and metrics)."""
        return self._pacer.snapshot()

    def concurrency(self) -> ConcurrencySnapshot:
        """Calls in flight, their adaptive limit and why (for logs and metrics)."""
        return self._limiter.snapshot()

    async def __aenter__(self) -> MoodleClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in list(self._holds):
            task.cancel()
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------
    async def call(self, wsfunction: str, params: Mapping[str, Param] | None = None) -> Any:
        """Call ``wsfunction``, retrying transient errors; return the decoded JSON value."""
        return await self._call(wsfunction, params or {})

    async def _call(
        self, wsfunction: str, params: Mapping[str, Param], *, retry_fatal: bool = True
    ) -> Any:
        """``retry_fatal=False``: an empty HTTP 500 is raised at once (batched writes split it
        by course instead of retrying what will fail the same way)."""
        attempts = self._settings.max_attempts
        for attempt in range(attempts):
            try:
                return await self._call_once(wsfunction, params)
            except RetryLater as exc:
                held = exc.held if isinstance(exc, RequestTimeout) else None
                if attempt + 1 >= attempts or (not retry_fatal and isinstance(exc, PhpFatalError)):
                    if held is not None:
                        await asyncio.shield(held)  # the copy we sent may still be running
                    raise
                if held is not None:
                    await asyncio.shield(held)  # never re-send while the first copy may run
                retry_after = (
                    min(exc.retry_after, self._settings.max_retry_after_s)
                    if exc.retry_after
                    else None
                )
                delay = self._backoff.delay(attempt, self._rand, retry_after)
                log.warning(
                    "moodle %s failed (%s), retry %d/%d in %.2fs",
                    wsfunction, exc, attempt + 1, attempts - 1, delay,
                )  # fmt: skip
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, wsfunction: str, params: Mapping[str, Param]) -> Any:
        form = [("wstoken", self._settings.token.get_secret_value()), *encode_params(params)]
        body = urlencode(form)
        query = {"wsfunction": wsfunction, "moodlewsrestformat": "json"}
        await self._bucket.acquire()
        ticket = await self._limiter.acquire()
        started = self._clock()
        try:
            response = await self._http.post(
                self._settings.endpoint,
                params=query,
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except httpx.TimeoutException as exc:
            hold = self._settings.hold_s
            timeout = RequestTimeout(f"timeout: {type(exc).__name__}", wsfunction=wsfunction)
            timeout.held = self._dropped(ticket, self._clock() - started, hold)
            self._observe(wsfunction, timeout, self._clock() - started)
            raise timeout from None
        except httpx.TransportError as exc:
            self._dropped(ticket, self._clock() - started, 0.0)
            error = TransportError(f"network: {type(exc).__name__}", wsfunction=wsfunction)
            self._observe(wsfunction, error, self._clock() - started)
            raise error from None
        except BaseException:
            self._limiter.release()
            raise
        elapsed = self._clock() - started
        self._limiter.release()
        log.debug(
            "moodle %s vars=%d status=%d in %.3fs",
            wsfunction, len(form) + 2, response.status_code, elapsed,
        )  # fmt: skip
        # Latency is compared per function and request size (power of two of the variables).
        kind = (wsfunction, len(form).bit_length())
        try:
            value = _decode(response, wsfunction)
        except RetryLater as exc:
            self._limiter.on_drop(ticket)
            self._pace(None, elapsed)
            self._observe(wsfunction, exc, elapsed)
            raise
        except MoodleError as exc:
            self._answered(ticket, kind, elapsed)  # answered (an item rejected): it counts
            self._observe(wsfunction, exc, elapsed)
            raise
        self._answered(ticket, kind, elapsed)
        self._observe(wsfunction, None, elapsed)
        return value

    def _observe(self, wsfunction: str, error: MoodleError | None, elapsed: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(wsfunction, call_outcome(error), elapsed)
        except Exception:  # an observer's bug must never fail a call
            log.exception("moodle call observer failed")

    def _dropped(self, ticket: Ticket, elapsed: float, hold: float) -> asyncio.Task[None] | None:
        """A call without an answer; with ``hold``, its slot is kept that long (returned task)."""
        self._limiter.on_drop(ticket)
        self._pace(None, elapsed)
        if not hold:
            self._limiter.release()
            return None
        task = asyncio.create_task(self._hold_slot(hold))
        self._holds.add(task)
        task.add_done_callback(self._holds.discard)
        return task

    async def _hold_slot(self, hold: float) -> None:
        """Keep a timed-out call's slot: the site may still be working on it."""
        try:
            await self._sleep(hold)
        finally:
            self._limiter.release()

    def _answered(self, ticket: Ticket, kind: tuple[str, int], elapsed: float) -> None:
        self._limiter.on_answer(ticket, elapsed, kind)
        self._pace(kind, elapsed)

    def _pace(self, kind: tuple[str, int] | None, elapsed: float) -> None:
        """Feed the pacer (``kind`` None: a transient failure) and apply its rate."""
        if kind is None:
            self._pacer.on_error(elapsed)
        else:
            self._pacer.observe(elapsed, kind)
        self._bucket.set_rate(self._pacer.rate)

    # -- site --------------------------------------------------------------------------------
    async def core_webservice_get_site_info(self, refresh: bool = False) -> SiteInfo:
        """Site name, release and version (cached; ``refresh`` after an upgrade)."""
        if self._site_info is None or refresh:
            self._site_info = SiteInfo.model_validate(
                await self.call("core_webservice_get_site_info")
            )
        return self._site_info

    site_info = core_webservice_get_site_info

    # -- enrolments --------------------------------------------------------------------------
    async def enrol_manual_enrol_users(
        self, enrolments: Sequence[Enrolment]
    ) -> list[ItemOutcome[Enrolment]]:
        """Enrol (or update) with the full tuple; per-item outcomes, bad rows isolated."""
        return await self._batched(
            "enrol_manual_enrol_users",
            "enrolments",
            enrolments,
            lambda e: e.as_param(),
            vars_per_row=6,
            course=lambda e: e.courseid,
        )

    async def enrol_manual_unenrol_users(
        self, unenrolments: Sequence[Unenrolment]
    ) -> list[ItemOutcome[Unenrolment]]:
        """Remove manual enrolments (last enrolment ⇒ Moodle deletes grades, groups, roles)."""
        with_roleid = (await self.site_info()).unenrol_accepts_roleid
        return await self._batched(
            "enrol_manual_unenrol_users",
            "enrolments",
            unenrolments,
            lambda u: u.as_param(with_roleid),
            vars_per_row=3 if with_roleid else 2,
            course=lambda u: u.courseid,
        )

    async def core_enrol_get_course_enrolment_methods(self, courseid: int) -> list[EnrolmentMethod]:
        """Enabled instances of plugins with get_enrol_info() (self, guest). Never lists manual,
        database, cohort or meta instances: use :meth:`has_usable_manual_instance` for that."""
        result = await self.call("core_enrol_get_course_enrolment_methods", {"courseid": courseid})
        return [EnrolmentMethod.model_validate(m) for m in _expect_list(result)]

    async def has_usable_manual_instance(self, courseid: int) -> bool | None:
        """Whether the course has an enabled manual instance (``enrollmentmethods`` of
        core_course_get_courses_by_field); None if the course is not found."""
        courses = await self.core_course_get_courses_by_field("id", courseid)
        if not courses:
            return None
        return "manual" in courses[0].enrollmentmethods

    async def core_enrol_get_users_courses(
        self, userid: int, *, returnusercount: bool = False
    ) -> list[UserCourse]:
        """Courses where ``userid`` has an active enrolment (with their idnumber)."""
        result = await self.call(
            "core_enrol_get_users_courses",
            {"userid": userid, "returnusercount": returnusercount},
        )
        return [UserCourse.model_validate(c) for c in _expect_list(result)]

    async def core_role_assign_roles(
        self, assignments: Sequence[RoleAssignment]
    ) -> list[ItemOutcome[RoleAssignment]]:
        """Manual role assignments (component ''), e.g. a second role in a course."""
        return await self._batched(
            "core_role_assign_roles", "assignments", assignments, lambda a: a.as_param(),
            vars_per_row=4,
        )  # fmt: skip

    async def core_role_unassign_roles(
        self, unassignments: Sequence[RoleAssignment]
    ) -> list[ItemOutcome[RoleAssignment]]:
        """Remove manual role assignments; to change a user's role, enrol with the new role
        first, then unassign the old one (roles held through an enrol plugin stay)."""
        return await self._batched(
            "core_role_unassign_roles", "unassignments", unassignments, lambda a: a.as_param(),
            vars_per_row=4,
        )  # fmt: skip

    async def core_enrol_get_enrolled_users(
        self,
        courseid: int,
        *,
        onlyactive: bool = False,
        onlysuspended: bool = False,
        userfields: Sequence[str] | None = None,
    ) -> list[EnrolledUser]:
        """Every page of the course's enrolled users (all states unless filtered)."""
        base: list[dict[str, Param]] = []
        if onlyactive:
            base.append({"name": "onlyactive", "value": "1"})
        if onlysuspended:
            base.append({"name": "onlysuspended", "value": "1"})
        if userfields:
            base.append({"name": "userfields", "value": ",".join(userfields)})
        size = self._settings.page_size
        users: list[EnrolledUser] = []
        while True:
            options: list[Param] = [
                *base,
                {"name": "limitfrom", "value": str(len(users))},
                {"name": "limitnumber", "value": str(size)},
            ]
            page = await self.call(
                "core_enrol_get_enrolled_users", {"courseid": courseid, "options": options}
            )
            users.extend(EnrolledUser.model_validate(u) for u in _expect_list(page))
            if len(page) < size:
                return users

    # -- lookups -----------------------------------------------------------------------------
    async def core_user_get_users_by_field(
        self, field: str, values: Sequence[str | int]
    ) -> list[MoodleUser]:
        """Users whose ``field`` (id, idnumber, username, email) is in ``values``.

        Unknown values are simply absent from the result, as in Moodle."""
        users: list[MoodleUser] = []
        size = self._rows_per_call(1)
        for chunk in chunks(list(dict.fromkeys(str(v) for v in values)), size):
            result = await self.call(
                "core_user_get_users_by_field", {"field": field, "values": list(chunk)}
            )
            users.extend(MoodleUser.model_validate(u) for u in _expect_list(result))
        return users

    async def core_course_get_courses_by_field(
        self, field: str = "", value: str | int = ""
    ) -> list[MoodleCourse]:
        result = await self.call(
            "core_course_get_courses_by_field", {"field": field, "value": str(value)}
        )
        return [MoodleCourse.model_validate(c) for c in _expect_dict(result).get("courses", [])]

    # -- cohorts -----------------------------------------------------------------------------
    async def core_cohort_create_cohorts(self, cohorts: Sequence[NewCohort]) -> list[Cohort]:
        """Create cohorts. Not idempotent: after a lost answer the retry may report
        ``record already exists: idnumber=…`` (InvalidParameter); search first when unsure."""
        result = await self.call(
            "core_cohort_create_cohorts", {"cohorts": [c.as_param() for c in cohorts]}
        )
        return [Cohort.model_validate(c) for c in _expect_list(result)]

    async def core_cohort_search_cohorts(
        self,
        query: str = "",
        *,
        contextid: int = 1,
        includes: str = "all",
        limitfrom: int = 0,
        limitnum: int = 0,
    ) -> list[Cohort]:
        params: dict[str, Param] = {
            "query": query,
            "context": {"contextid": contextid},
            "includes": includes,
            "limitfrom": limitfrom,
            "limitnum": limitnum,
        }
        result = await self.call("core_cohort_search_cohorts", params)
        return [Cohort.model_validate(c) for c in _expect_dict(result).get("cohorts", [])]

    async def core_cohort_get_cohorts(self, cohortids: Sequence[int] = ()) -> list[Cohort]:
        """The given cohorts (every cohort when empty); a missing id is RecordNotFound."""
        params: dict[str, Param] = {"cohortids": list(cohortids)} if cohortids else {}
        result = await self.call("core_cohort_get_cohorts", params)
        return [Cohort.model_validate(c) for c in _expect_list(result)]

    async def core_cohort_get_cohort_members(self, cohortids: Sequence[int]) -> list[CohortMembers]:
        members: list[CohortMembers] = []
        for chunk in chunks(list(cohortids), self._rows_per_call(1)):
            result = await self.call("core_cohort_get_cohort_members", {"cohortids": list(chunk)})
            members.extend(CohortMembers.model_validate(m) for m in _expect_list(result))
        return members

    async def core_cohort_add_cohort_members(
        self, members: Sequence[CohortMember]
    ) -> list[ItemOutcome[CohortMember]]:
        """Add members. Moodle answers problems as warnings, mapped back to items: '3' (already a
        member) counts as applied; '1' (bad type) and '2' (cohort/user not found) as rejected."""
        warnings: list[WsWarning] = []

        async def send(rows: Sequence[CohortMember]) -> None:
            result = await self.call(
                "core_cohort_add_cohort_members", {"members": [r.as_param() for r in rows]}
            )
            warnings.extend(
                WsWarning.model_validate(w) for w in _expect_dict(result).get("warnings", [])
            )

        outcomes: list[ItemOutcome[CohortMember]] = []
        for chunk in chunks(members, self._rows_per_call(4)):
            warnings.clear()
            for outcome in await apply_bisecting(chunk, send):
                outcomes.append(_apply_warnings(outcome, warnings))
        return outcomes

    async def core_cohort_delete_cohort_members(
        self, members: Sequence[CohortMemberIds]
    ) -> list[ItemOutcome[CohortMemberIds]]:
        return await self._batched(
            "core_cohort_delete_cohort_members",
            "members",
            members,
            lambda m: m.as_param(),
            vars_per_row=2,
        )

    # -- meta links and groups ---------------------------------------------------------------
    async def enrol_meta_add_instances(
        self, links: Sequence[MetaLink]
    ) -> list[ItemOutcome[MetaLink]]:
        """Create meta links (Moodle ≥ 4.0); an existing link counts as applied."""
        return await self._batched(
            "enrol_meta_add_instances", "instances", links, lambda m: m.as_param(), vars_per_row=3
        )

    async def enrol_meta_delete_instances(
        self, links: Sequence[MetaLink]
    ) -> list[ItemOutcome[MetaLink]]:
        return await self._batched(
            "enrol_meta_delete_instances",
            "instances",
            links,
            lambda m: m.as_param(False),
            vars_per_row=2,
        )

    async def core_group_add_group_members(
        self, members: Sequence[GroupMember]
    ) -> list[ItemOutcome[GroupMember]]:
        return await self._batched(
            "core_group_add_group_members",
            "members",
            members,
            lambda m: m.as_param(),
            vars_per_row=2,
        )

    async def core_group_get_course_groups(self, courseid: int) -> list[MoodleGroup]:
        result = await self.call("core_group_get_course_groups", {"courseid": courseid})
        return [MoodleGroup.model_validate(g) for g in _expect_list(result)]

    async def core_group_get_group_members(self, groupids: Sequence[int]) -> list[GroupMembers]:
        members: list[GroupMembers] = []
        for chunk in chunks(list(groupids), self._rows_per_call(1)):
            result = await self.call("core_group_get_group_members", {"groupids": list(chunk)})
            members.extend(GroupMembers.model_validate(m) for m in _expect_list(result))
        return members

    # -- helpers -----------------------------------------------------------------------------
    def _rows_per_call(self, vars_per_row: int) -> int:
        s = self._settings
        return max_rows(s.max_input_vars, vars_per_row, s.input_vars_safety, s.max_batch_rows)

    async def _batched(
        self,
        wsfunction: str,
        key: str,
        items: Sequence[T],
        row: Callable[[T], dict[str, Param]],
        vars_per_row: int,
        course: Callable[[T], int] | None = None,
    ) -> list[ItemOutcome[T]]:
        limit = int(self._settings.max_input_vars * self._settings.input_vars_safety)

        async def send(rows: Sequence[T]) -> object:
            params: dict[str, Param] = {key: [row(r) for r in rows]}
            if count_vars(params) + 3 > limit:  # rows with optional keys are counted at worst
                raise AssertionError(f"{wsfunction}: batch exceeds max_input_vars budget")
            return await self._call(wsfunction, params, retry_fatal=course is None)

        async def confirm(courseid: int, cause: MoodleError) -> NoManualInstance | None:
            return await self._no_manual_instance(wsfunction, courseid, cause)

        size = self._rows_per_call(vars_per_row)

        async def lane(indexes: list[int]) -> list[tuple[int, ItemOutcome[T]]]:
            done: list[tuple[int, ItemOutcome[T]]] = []
            for chunk in chunks(indexes, size):
                outcomes = await apply_bisecting(
                    [items[i] for i in chunk], send, course=course, confirm=confirm
                )
                done.extend(zip(chunk, outcomes, strict=True))
            return done

        lanes = _lanes(items, course, size)
        results: list[ItemOutcome[T] | None] = [None] * len(items)
        for done in await asyncio.gather(*(lane(indexes) for indexes in lanes)):
            for index, outcome in done:
                results[index] = outcome
        outcomes = [o for o in results if o is not None]
        rejected = sum(o.status is Status.REJECTED for o in outcomes)
        if rejected:
            log.info("moodle %s: %d/%d items rejected", wsfunction, rejected, len(outcomes))
        return outcomes

    async def _no_manual_instance(
        self, wsfunction: str, courseid: int, cause: MoodleError
    ) -> NoManualInstance | None:
        """After an empty HTTP 500 on one course's rows: is it Moodle ≤4.4/PHP 8 dying on
        ``wsnoinstance``? Confirmed when the course exists and lists no enabled manual
        instance; otherwise None (the fatal stays unexplained, hence transient)."""
        try:
            usable = await self.has_usable_manual_instance(courseid)
        except MoodleError as exc:
            log.warning("moodle: cannot check course %d's enrol methods: %s", courseid, exc)
            return None
        if usable is not False:
            return None
        log.warning(
            "moodle %s: course %d has %s (HTTP 500 with an empty body: %s)",
            wsfunction, courseid, NoManualInstance.REASON, cause,
        )  # fmt: skip
        return NoManualInstance(
            f"{NoManualInstance.REASON} in course {courseid} (the site answered HTTP 500 with "
            "an empty body: Moodle <=4.4 on PHP 8 dies building wsnoinstance)",
            courseid=courseid,
            errorcode="wsnoinstance",
            wsfunction=wsfunction,
        )


def _lanes(items: Sequence[T], course: Callable[[T], int] | None, size: int) -> list[list[int]]:
    """Indexes of ``items`` in lanes applied concurrently: a course's rows all in one lane, in
    input order; courses smaller than a batch share one (one lane per shared batch)."""
    if course is None:
        return [list(range(len(items)))] if items else []
    by_course: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        by_course.setdefault(course(item), []).append(index)
    lanes: list[list[int]] = []
    shared: list[int] = []
    for indexes in by_course.values():
        if len(indexes) >= size:
            lanes.append(indexes)
            continue
        if len(shared) + len(indexes) > size:
            lanes.append(shared)
            shared = []
        shared.extend(indexes)
    if shared:
        lanes.append(shared)
    return lanes


_RETRY_AFTER_RE = re.compile(r"^\d+(\.\d+)?$")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if _RETRY_AFTER_RE.match(value) else None


def _decode(response: httpx.Response, wsfunction: str) -> Any:
    status = response.status_code
    if status == 429:
        raise RateLimited("HTTP 429", status=status, retry_after=_retry_after(response))
    if status == 500 and not response.content:
        # PHP died before Moodle could answer (no error object): e.g. ≤4.4 on PHP 8, wsnoinstance.
        raise PhpFatalError("HTTP 500, empty body (PHP fatal error)", status=status)
    if status >= 500:
        raise ServerError(f"HTTP {status}", status=status, retry_after=_retry_after(response))
    if status != 200:
        # 403 with an empty body: web services or the REST protocol are disabled on the site.
        raise CallRejected(f"HTTP {status}", wsfunction=wsfunction)
    try:
        value = json.loads(response.content)
    except ValueError:
        raise MoodleBug(
            f"unparseable response: {response.text[:200]!r}", wsfunction=wsfunction
        ) from None
    if isinstance(value, dict) and "exception" in value:
        raise error_from_body(value, wsfunction)
    return value


def _expect_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise MoodleBug(f"expected a list, got {type(value).__name__}")
    return value


def _expect_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MoodleBug(f"expected an object, got {type(value).__name__}")
    return value


def _apply_warnings(
    outcome: ItemOutcome[CohortMember], warnings: Sequence[WsWarning]
) -> ItemOutcome[CohortMember]:
    if outcome.status is not Status.APPLIED:
        return outcome
    item = outcome.item
    cohort_key = f"cohort {item.cohorttype}={item.cohort} not exists"
    user_key = f"user {item.usertype}={item.user} not exists"
    for warning in warnings:
        if warning.warningcode == "2" and warning.message in (cohort_key, user_key):
            return ItemOutcome(
                item, Status.REJECTED, RecordNotFound(warning.message, errorcode="2")
            )
        if warning.warningcode == "1" and warning.message.endswith(
            (f"cohortype={item.cohorttype}", f"usertype={item.usertype}")
        ):
            return ItemOutcome(
                item, Status.REJECTED, InvalidParameter(warning.message, errorcode="1")
            )
    return outcome
