"""The emulator's REST endpoint ``/webservice/rest/server.php``, served by N emulated PHP workers.

The endpoint follows ``webservice_rest_server`` (moodle-ws.md §1): 403 with an empty body when
REST is disabled; GET and POST merged (POST wins); token, then function and service, then
parameters, then the function in one transaction; every Moodle error at HTTP 200, a PHP fatal
error as HTTP 500 with an empty body. A call holds a worker for its service time under the
cost profile (:mod:`streams.emulator.cost`); calls beyond the workers wait, as with PHP-FPM.
The ``/_emulator/*`` controls are in :mod:`streams.emulator.controls`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from streams.emulator.cost import PROFILES, CostProfile, WorkerPool
from streams.emulator.external import (
    PhpFatal,
    WsError,
    clean_returnvalue,
    invalid_parameter,
    missing_record,
    moodle_exception,
    validate,
    xmlize_result,
)
from streams.emulator.faults import FaultInjector, Faults, Stats
from streams.emulator.functions.base import Ctx, Function
from streams.emulator.lib.sync import sync_meta_links
from streams.emulator.phpform import PhpArray, merge_get_post, parse_query
from streams.emulator.registry import function_table, known_to_moodle
from streams.emulator.state import SqliteStore, State, User, load_seed

log = logging.getLogger(__name__)

REST_PATH: Final = "/webservice/rest/server.php"
_WS_SETTINGS: Final = tuple(
    f"moodlewssetting{n}" for n in ("raw", "fileurl", "filter", "lang", "timezone")
)
_NO_CACHE: Final = {
    "Cache-Control": "private, must-revalidate, pre-check=0, post-check=0, max-age=0",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
    "Pragma": "no-cache",
    "Accept-Ranges": "none",
    "Access-Control-Allow-Origin": "*",
}
_ACCESS_DEBUG: Final = (
    "Access to the function {name}() is not allowed. There could be multiple reasons for this: "
    "1. The service linked to the user token does not contain the function. "
    "2. The service is user-restricted and the user is not listed. "
    "3. The service is IP-restricted and the user IP is not listed. "
    "4. The service is time-restricted and the time has expired. "
    "5. The token is time-restricted and the time has expired. "
    "6. The service requires a specific capability which the user does not have. "
    "7. The function is called with username/password (no user token is sent) and none of the "
    "services has the function to allow the user. These settings can be found in Administration > "
    "Site administration > Server > Web services > External services and Manage tokens."
)


@dataclass
class Served:
    """What one call did, for the response and for the cost model."""

    function: str = ""
    changed: int = 0
    unchanged: int = 0
    returned: int = 0


class Emulator:
    """The emulated site: state, function tables per version, workers, costs, faults, stats."""

    def __init__(
        self,
        seed: Mapping[str, Any],
        faults: Faults | None = None,
        store: SqliteStore | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        profile: str | CostProfile = "instant",
        workers: int | None = None,
        cost_seed: int | None = None,
    ) -> None:
        self.seed = dict(seed)
        self.overrides = dict(overrides or {})
        self.store = store
        persisted = store.load() if store is not None else None
        self.state = self._build(persisted if persisted is not None else self.seed)
        self.injector = FaultInjector(faults)
        self.stats = Stats()
        self.profile = PROFILES[profile] if isinstance(profile, str) else profile
        self.workers = WorkerPool(workers)
        self.cost_rng = random.Random(cost_seed)
        self._tables: dict[str, dict[str, Function]] = {}

    def _build(self, data: Mapping[str, Any]) -> State:
        site = {**data.get("site", {}), **self.overrides}
        return load_seed({**data, "site": site})

    def reset(self) -> None:
        self.state = self._build(self.seed)
        self.stats.reset()

    def functions(self) -> dict[str, Function]:
        version = self.state.site.version
        if version not in self._tables:
            self._tables[version] = function_table(self.state.site.at_least)
        return self._tables[version]

    # -- one web-service call ----------------------------------------------------------------
    def execute(
        self, wstoken: Any, wsfunction: Any, params: PhpArray, served: Served | None = None
    ) -> tuple[Any, Function]:
        """Run one call; raise :class:`WsError` or :class:`PhpFatal` (rolled back)."""
        served = served if served is not None else Served()
        state = self.state
        token = state.tokens.get(wstoken) if isinstance(wstoken, str) else None
        if token is None:
            raise moodle_exception("invalidtoken", "Invalid token - token not found")
        user = state.users.get(token.userid) or User(token.userid, "unknown")
        self._check_user(user)
        if not wsfunction:
            raise invalid_parameter("Missing function name")
        name = str(wsfunction)
        served.function = name
        function = self.functions().get(name) if isinstance(wsfunction, str) else None
        if function is None and not known_to_moodle(name):
            raise missing_record("external_functions", "name = ?", name)
        if function is None or (token.functions is not None and name not in token.functions):
            raise _access_exception(_ACCESS_DEBUG.format(name=name))
        validated = validate(function.params, params)
        ctx = Ctx(state, token, user)
        try:
            result = function.impl(ctx, validated)
            sync_meta_links(ctx)
            cleaned = clean_returnvalue(function.returns, result)
        except BaseException:
            ctx.txn.rollback()
            served.changed, served.unchanged = 0, ctx.rows_changed + ctx.rows_unchanged
            raise
        state.commit(ctx.txn)
        served.changed, served.unchanged = ctx.rows_changed, ctx.rows_unchanged
        self.stats.rows_changed += ctx.rows_changed
        self.stats.rows_unchanged += ctx.rows_unchanged
        served.returned = _items(cleaned)
        rows = validated.get("enrolments")
        if isinstance(rows, list):
            self.stats.rows_applied += len(rows)
        return cleaned, function

    def _check_user(self, user: User) -> None:
        if user.deleted:
            raise moodle_exception(
                "wsaccessuserdeleted",
                f"Refused web service access for deleted username: {user.username}",
            )
        if user.suspended:
            raise moodle_exception(
                "wsaccessusersuspended",
                f"Refused web service access for suspended username: {user.username}",
            )
        if self.injector.faults.maintenance and "*" not in user.capabilities:
            raise moodle_exception(
                "sitemaintenance",
                "The site is undergoing maintenance and is currently not available",
            )
        if not user.can("webservice/rest:use"):
            raise _access_exception(
                "You are not allowed to use the {$a} protocol "
                "(missing capability: webservice/rest:use)"
            )

    # -- HTTP ---------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.state.site.rest_enabled:
            return web.Response(status=403, body=b"")
        self.stats.enter()
        arrived = self.stats.clock()
        try:
            return await self._with_faults(request)
        finally:
            self.stats.leave(arrived)

    async def _with_faults(self, request: web.Request) -> web.StreamResponse:
        inj, faults = self.injector, self.injector.faults
        if inj.rate_limited():
            assert faults.rate_limit is not None
            self.stats.by_outcome["rate_limited"] += 1
            return web.Response(
                status=faults.rate_limit.status,
                text="Too Many Requests",
                headers={"Retry-After": str(faults.rate_limit.retry_after_s)},
            )
        if faults.http503:
            self.stats.by_outcome["http503"] += 1
            return _maintenance_page(faults.retry_after_s)
        delay = inj.delay()
        if delay:
            await asyncio.sleep(delay)
        fail, hang = inj.should_fail(), inj.should_hang()
        if faults.when == "before":
            if hang:
                self.stats.by_outcome["timeout"] += 1
                await asyncio.sleep(faults.timeout_s)
                return web.Response(status=504, text="Gateway Timeout")
            if fail:
                return self._injected_error(faults)
        response = await self._serve(request)
        if hang:
            self.stats.by_outcome["timeout"] += 1
            await asyncio.sleep(faults.timeout_s)
        if fail:
            return self._injected_error(faults)
        return response

    async def _serve(self, request: web.Request) -> web.Response:
        """Wait for a PHP worker, run the call, hold the worker for the call's service time."""
        body = b""
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            body = await request.read()
        loop = asyncio.get_running_loop()
        async with self.workers.slot():
            started = loop.time()
            served = Served()
            response = self._process(request.query_string, body, served)
            cost = self.profile.service_s(
                served.function, served.changed, served.unchanged, served.returned, self.cost_rng
            )
            allowance = self.profile.http_overhead_ms / 1000.0
            remaining = cost - allowance - (loop.time() - started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            self.stats.busy_s += loop.time() - started
        return response

    def _process(self, query: str, body: bytes, served: Served) -> web.Response:
        max_vars = self.state.site.max_input_vars
        get, get_count, get_cut = parse_query(query, max_vars, "get")
        post, post_count, post_cut = parse_query(body.decode("utf-8", "replace"), max_vars, "post")
        self.stats.max_vars_seen = max(self.stats.max_vars_seen, get_count, post_count)
        if get_cut or post_cut:
            self.stats.truncated_calls += 1
            log.warning("PHP Warning: Input variables exceeded %d.", max_vars)
        params = merge_get_post(get, post)
        for name in _WS_SETTINGS:
            params.pop(name, None)
        fmt = params.pop("moodlewsrestformat", "xml")
        fmt = fmt if fmt in ("json", "xml") else "xml"
        wstoken = params.pop("wstoken", "")
        wsfunction = params.pop("wsfunction", None)
        try:
            result, function = self.execute(wstoken, wsfunction, params, served)
        except WsError as exc:
            self.stats.by_outcome[exc.errorcode or exc.kind] += 1
            return self._error(exc, fmt)
        except PhpFatal as exc:
            self.stats.by_outcome["php_fatal"] += 1
            self.stats.php_fatals += 1
            log.warning("PHP Fatal error: Uncaught %s (HTTP 500, empty body)", exc)
            return web.Response(status=500, body=b"", content_type="text/html")
        self.stats.by_function[function.name] += 1
        self.stats.by_outcome["ok"] += 1
        if fmt == "json":
            return _json_response(result)
        return _xml_response(f"<RESPONSE>\n{xmlize_result(function.returns, result)}</RESPONSE>\n")

    def _injected_error(self, faults: Faults) -> web.Response:
        kind = faults.error_kind
        self.stats.by_outcome[kind] += 1
        if kind == "phpfatal":
            return web.Response(status=500, body=b"", content_type="text/html")
        if kind.startswith("http"):
            status = int(kind[4:])
            return web.Response(
                status=status,
                text=f"<html><body><h1>{status}</h1>Injected fault</body></html>",
                content_type="text/html",
                headers={"Retry-After": "1"} if status == 503 else None,
            )
        message = {
            "dmlwriteexception": ("dml_write_exception", "Error writing to database"),
            "dbconnectionfailed": ("dml_connection_exception", "Error: Database connection failed"),
        }[kind]
        error = WsError(message[0], kind, message[1])
        return _json_response(error.as_dict(self.state.site.at_least("4.5"), self.state.site.debug))

    def _error(self, exc: WsError, fmt: str) -> web.Response:
        site = self.state.site
        body = exc.as_dict(site.at_least("4.5"), site.debug)
        if fmt == "json":
            return _json_response(body)
        xml = f"<EXCEPTION class={quoteattr(body['exception'])}>\n"
        if "errorcode" in body:
            xml += f"<ERRORCODE>{escape(body['errorcode'])}</ERRORCODE>\n"
        xml += f"<MESSAGE>{escape(body['message'])}</MESSAGE>\n"
        if "debuginfo" in body:
            xml += f"<DEBUGINFO>{escape(body['debuginfo'])}</DEBUGINFO>\n"
        return _xml_response(xml + "</EXCEPTION>\n")


def _items(result: Any) -> int:
    """Items a read returned (a list, or the largest list inside an object)."""
    if isinstance(result, list):
        return len(result)
    if isinstance(result, dict):
        return max((len(v) for v in result.values() if isinstance(v, list)), default=0)
    return 0


def _access_exception(debuginfo: str) -> WsError:
    return WsError(
        "webservice_access_exception", "accessexception", "Access control exception", debuginfo
    )


def php_json(value: Any) -> str:
    """``json_encode`` defaults: ASCII only, slashes escaped."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/")


def _json_response(value: Any) -> web.Response:
    return web.Response(
        body=php_json(value).encode(), headers={**_NO_CACHE, "Content-Type": "application/json"}
    )


def _xml_response(body: str) -> web.Response:
    text = '<?xml version="1.0" encoding="UTF-8" ?>\n' + body
    return web.Response(
        body=text.encode(),
        headers={**_NO_CACHE, "Content-Type": "application/xml; charset=utf-8"},
    )


def _maintenance_page(retry_after: int) -> web.Response:
    # What a CLI-maintenance site (climaintenance.html) answers.
    return web.Response(
        status=503,
        text="<!DOCTYPE html><html><body><h1>Site is undergoing maintenance</h1></body></html>",
        content_type="text/html",
        headers={"Retry-After": str(retry_after)},
    )


# ------------------------------------------------------------------------------------------------
# In-process helper


@dataclass
class RunningEmulator:
    url: str
    emulator: Emulator

    @property
    def endpoint(self) -> str:
        return self.url + REST_PATH

    @property
    def state(self) -> State:
        return self.emulator.state


def load_seed_file(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def create_app(emulator: Emulator) -> web.Application:
    from streams.emulator.controls import add_controls  # controls import this module

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", REST_PATH, emulator.handle)
    add_controls(app, emulator)
    return app


@asynccontextmanager
async def running_emulator(
    seed: Mapping[str, Any] | Path,
    *,
    faults: Faults | None = None,
    state_file: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    profile: str | CostProfile = "instant",
    workers: int | None = None,
    cost_seed: int | None = None,
    **site_overrides: Any,
) -> AsyncIterator[RunningEmulator]:
    """Serve an emulator on ``host:port`` (0 = ephemeral) for the duration of the block.

    ``profile`` ("instant", "calibrated" or a :class:`CostProfile`) and ``workers`` (PHP
    workers; None = unbounded) set what calls cost; other keywords override site settings."""
    data = load_seed_file(seed) if isinstance(seed, Path) else seed
    store = SqliteStore(state_file) if state_file is not None else None
    emulator = Emulator(
        data,
        faults,
        store,
        {k: v for k, v in site_overrides.items() if v is not None},
        profile=profile,
        workers=workers,
        cost_seed=cost_seed,
    )
    runner = web.AppRunner(create_app(emulator), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningEmulator(f"http://{bound_host}:{bound_port}", emulator)
    finally:
        await runner.cleanup()
