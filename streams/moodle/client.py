"""Async Moodle web-service client: the only module here that talks HTTP.

Every call: rate limit (token bucket) → concurrency slot (semaphore) → POST form to
``/webservice/rest/server.php`` (``wsfunction``/format in the query string, token in the body
so it never reaches an access log) → typed error or value. Transient errors are retried with
exponential backoff and full jitter; the rate itself follows an
:class:`~streams.moodle.pacing.AdaptivePacer` (lower when latency rises or calls fail
transiently, back up when latency is normal). Batched writes are cut to fit ``max_input_vars``
and bisected on item errors (see :mod:`streams.moodle.batching`).

Batches of one method are applied in order, one after another, so that Moodle's "last row
wins" holds across batches too; run independent courses concurrently if more throughput is
needed (the semaphore and the rate limit still bound the site's load).
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
from streams.moodle.encoding import Param, count_vars, encode_params
from streams.moodle.errors import (
    CallRejected,
    InvalidParameter,
    MoodleBug,
    MoodleError,
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
    EnrolledUser,
    Enrolment,
    GroupMember,
    MetaLink,
    MoodleCourse,
    MoodleUser,
    NewCohort,
    SiteInfo,
    Unenrolment,
    WsWarning,
)
from streams.moodle.pacing import AdaptivePacer, PacerSnapshot
from streams.moodle.settings import MoodleSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["MoodleClient"]


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
    ) -> None:
        self._settings = settings
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_concurrency,
                max_keepalive_connections=settings.max_concurrency,
            ),
            verify=settings.verify_tls,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrency)
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
            clock=clock,
        )
        self._backoff = Backoff(settings.backoff_base_s, 2.0, settings.backoff_cap_s)
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._site_info: SiteInfo | None = None

    def __repr__(self) -> str:
        return f"MoodleClient(url={self._settings.url!r})"

    def pacing(self) -> PacerSnapshot:
        """Effective call rate and why (for logs and metrics)."""
        return self._pacer.snapshot()

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
        await self._http.aclose()

    # -- transport ---------------------------------------------------------------------------
    async def call(self, wsfunction: str, params: Mapping[str, Param] | None = None) -> Any:
        """Call ``wsfunction``, retrying transient errors; return the decoded JSON value."""
        params = params or {}
        attempts = self._settings.max_attempts
        for attempt in range(attempts):
            try:
                return await self._call_once(wsfunction, params)
            except RetryLater as exc:
                if attempt + 1 >= attempts:
                    raise
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
        async with self._slots:
            started = self._clock()
            try:
                response = await self._http.post(
                    self._settings.endpoint,
                    params=query,
                    content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            except httpx.TimeoutException as exc:
                self._pace(None, self._clock() - started)
                raise RequestTimeout(
                    f"timeout: {type(exc).__name__}", wsfunction=wsfunction
                ) from None
            except httpx.TransportError as exc:
                self._pace(None, self._clock() - started)
                raise TransportError(
                    f"network: {type(exc).__name__}", wsfunction=wsfunction
                ) from None
        elapsed = self._clock() - started
        log.debug(
            "moodle %s vars=%d status=%d in %.3fs",
            wsfunction, len(form) + 2, response.status_code, elapsed,
        )  # fmt: skip
        # Latency is compared per function and request size (power of two of the variables).
        kind = (wsfunction, len(form).bit_length())
        try:
            value = _decode(response, wsfunction)
        except RetryLater:
            self._pace(None, elapsed)
            raise
        except MoodleError:
            self._pace(kind, elapsed)  # answered (an item rejected): its latency counts
            raise
        self._pace(kind, elapsed)
        return value

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
        )

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
    ) -> list[ItemOutcome[T]]:
        limit = int(self._settings.max_input_vars * self._settings.input_vars_safety)

        async def send(rows: Sequence[T]) -> object:
            params: dict[str, Param] = {key: [row(r) for r in rows]}
            if count_vars(params) + 3 > limit:  # rows with optional keys are counted at worst
                raise AssertionError(f"{wsfunction}: batch exceeds max_input_vars budget")
            return await self.call(wsfunction, params)

        outcomes: list[ItemOutcome[T]] = []
        for chunk in chunks(items, self._rows_per_call(vars_per_row)):
            outcomes.extend(await apply_bisecting(chunk, send))
        rejected = sum(o.status is Status.REJECTED for o in outcomes)
        if rejected:
            log.info("moodle %s: %d/%d items rejected", wsfunction, rejected, len(outcomes))
        return outcomes


_RETRY_AFTER_RE = re.compile(r"^\d+(\.\d+)?$")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if _RETRY_AFTER_RE.match(value) else None


def _decode(response: httpx.Response, wsfunction: str) -> Any:
    status = response.status_code
    if status == 429:
        raise RateLimited("HTTP 429", status=status, retry_after=_retry_after(response))
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
