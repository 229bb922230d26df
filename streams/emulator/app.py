"""The emulator's aiohttp app: ``/webservice/rest/server.php`` plus ``/_emulator/*`` controls.

The REST endpoint follows ``webservice_rest_server`` (moodle-ws.md §1): 403 with an empty body
when REST is disabled; GET and POST merged (POST wins); token, then function and service,
then parameters, then the function in one transaction; every error at HTTP 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from streams.emulator.external import (
    WsError,
    invalid_parameter,
    missing_record,
    moodle_exception,
    validate,
)
from streams.emulator.faults import FaultInjector, Faults, Stats
from streams.emulator.functions import Ctx, Function, function_table, sync_meta_links
from streams.emulator.phpform import PhpArray, merge_get_post, parse_query
from streams.emulator.state import VERSIONS, SqliteStore, State, User, load_seed

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


class Emulator:
    """The emulated site: state, function tables per version, faults and statistics."""

    def __init__(
        self,
        seed: Mapping[str, Any],
        faults: Faults | None = None,
        store: SqliteStore | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.seed = dict(seed)
        self.overrides = dict(overrides or {})
        self.store = store
        persisted = store.load() if store is not None else None
        self.state = self._build(persisted if persisted is not None else self.seed)
        self.injector = FaultInjector(faults)
        self.stats = Stats()
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
    def execute(self, wstoken: Any, wsfunction: Any, params: PhpArray) -> tuple[Any, Function]:
        state = self.state
        token = state.tokens.get(wstoken) if isinstance(wstoken, str) else None
        if token is None:
            raise moodle_exception("invalidtoken", "Invalid token - token not found")
        user = state.users.get(token.userid) or User(token.userid, "unknown")
        admin = "*" in token.capabilities
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
        if self.injector.faults.maintenance and not admin:
            raise moodle_exception(
                "sitemaintenance",
                "The site is undergoing maintenance and is currently not available",
            )
        if not token.can("webservice/rest:use"):
            raise _access_exception(
                "You are not allowed to use the {$a} protocol "
                "(missing capability: webservice/rest:use)"
            )
        if not wsfunction:
            raise invalid_parameter("Missing function name")
        function = self.functions().get(wsfunction) if isinstance(wsfunction, str) else None
        if function is None:
            raise missing_record("external_functions", "name = ?", str(wsfunction))
        if token.functions is not None and function.name not in token.functions:
            raise _access_exception(_ACCESS_DEBUG.format(name=function.name))
        validated = validate(function.params, params)
        ctx = Ctx(state, token)
        try:
            result = function.impl(ctx, validated)
            sync_meta_links(ctx)
        except BaseException:
            ctx.txn.rollback()
            raise
        state.commit(ctx.txn)
        rows = validated.get("enrolments")
        if isinstance(rows, list):
            self.stats.rows_applied += len(rows)
        return result, function

    # -- HTTP ---------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.state.site.rest_enabled:
            return web.Response(status=403, body=b"")
        self.stats.enter()
        try:
            return await self._with_faults(request)
        finally:
            self.stats.leave()

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
        response = await self._process(request)
        if hang:
            self.stats.by_outcome["timeout"] += 1
            await asyncio.sleep(faults.timeout_s)
        if fail:
            return self._injected_error(faults)
        return response

    def _injected_error(self, faults: Faults) -> web.Response:
        kind = faults.error_kind
        self.stats.by_outcome[kind] += 1
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

    async def _process(self, request: web.Request) -> web.Response:
        max_vars = self.state.site.max_input_vars
        get, get_count, get_cut = parse_query(request.query_string, max_vars)
        post: PhpArray = {}
        post_count, post_cut = 0, False
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            raw = (await request.read()).decode("utf-8", "replace")
            post, post_count, post_cut = parse_query(raw, max_vars)
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
            result, function = self.execute(wstoken, wsfunction, params)
        except WsError as exc:
            self.stats.by_outcome[exc.errorcode or exc.kind] += 1
            return self._error(exc, fmt)
        self.stats.by_function[function.name] += 1
        self.stats.by_outcome["ok"] += 1
        if fmt == "json":
            return _json_response(result)
        body = "" if function.returns_null else _xmlize(result)
        return _xml_response(f"<RESPONSE>\n{body}</RESPONSE>\n")

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


def _xmlize(value: Any) -> str:
    if isinstance(value, list):
        return "<MULTIPLE>\n" + "".join(_xmlize(v) for v in value) + "</MULTIPLE>\n"
    if isinstance(value, dict):
        keys = "".join(f'<KEY name="{k}">{_xmlize(v)}</KEY>\n' for k, v in value.items())
        return f"<SINGLE>\n{keys}</SINGLE>\n"
    if value is None:
        return '<VALUE null="null"/>\n'
    if isinstance(value, bool):
        value = int(value)
    return f"<VALUE>{escape(str(value))}</VALUE>\n"


def _maintenance_page(retry_after: int) -> web.Response:
    # What a CLI-maintenance site (climaintenance.html) answers.
    return web.Response(
        status=503,
        text="<!DOCTYPE html><html><body><h1>Site is undergoing maintenance</h1></body></html>",
        content_type="text/html",
        headers={"Retry-After": str(retry_after)},
    )


# ------------------------------------------------------------------------------------------------
# /_emulator/* controls


EMULATOR_KEY: Final = web.AppKey("emulator", Emulator)


def _emu(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


async def _get_state(request: web.Request) -> web.Response:
    return web.json_response(_emu(request).state.snapshot())


async def _get_enrolments(request: web.Request) -> web.Response:
    state = _emu(request).state
    courseid = request.query.get("courseid")
    userid = request.query.get("userid")
    rows = []
    for (iid, uid), ue in sorted(state.ue.items()):
        inst = state.instances[iid]
        if courseid is not None and inst.courseid != int(courseid):
            continue
        if userid is not None and uid != int(userid):
            continue
        roles = sorted(state.ra.get((inst.courseid, uid), set()))
        rows.append(
            {
                **asdict(ue),
                "courseid": inst.courseid,
                "enrol": inst.enrol,
                "roles": [{"roleid": r, "component": c, "itemid": i} for (r, c, i) in roles],
                "grade": state.grades.get((inst.courseid, uid)),
                "groups": [g.id for g in state.user_groups(inst.courseid, uid)],
            }
        )
    return web.json_response(rows)


async def _grades(request: web.Request) -> web.Response:
    state = _emu(request).state
    if request.method == "POST":
        body = await request.json()
        state.grades[(int(body["courseid"]), int(body["userid"]))] = float(body["grade"])
        state.dirty = True
    return web.json_response(
        [{"courseid": c, "userid": u, "grade": g} for (c, u), g in sorted(state.grades.items())]
    )


async def _faults(request: web.Request) -> web.Response:
    emu = _emu(request)
    if request.method == "DELETE":
        emu.injector.configure(Faults())
    elif request.method == "POST":
        merged = {**emu.injector.faults.model_dump(), **(await request.json())}
        try:
            emu.injector.configure(Faults.model_validate(merged))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(emu.injector.faults.model_dump())


async def _stats(request: web.Request) -> web.Response:
    emu = _emu(request)
    if request.method == "POST":
        emu.stats.reset()
    window = float(request.query.get("window", "1.0"))
    return web.json_response(emu.stats.as_dict(window))


async def _config(request: web.Request) -> web.Response:
    emu = _emu(request)
    site = emu.state.site
    if request.method == "POST":
        body = await request.json()
        unknown = set(body) - set(asdict(site))
        if unknown or body.get("version", site.version) not in VERSIONS:
            return web.json_response({"error": f"bad config {sorted(unknown) or body}"}, status=400)
        for key, value in body.items():
            setattr(site, key, value)
    return web.json_response(asdict(site))


async def _users(request: web.Request) -> web.Response:
    state = _emu(request).state
    body = await request.json()
    uid = int(body.pop("id", 0)) or state.next_id("user", state.users)
    state.users[uid] = User(id=uid, **body)
    state.dirty = True
    return web.json_response(asdict(state.users[uid]))


async def _reset(request: web.Request) -> web.Response:
    _emu(request).reset()
    return web.json_response({"ok": True})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "version": _emu(request).state.site.version})


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    app.router.add_route("*", REST_PATH, emulator.handle)
    app.router.add_get("/_emulator/state", _get_state)
    app.router.add_get("/_emulator/enrolments", _get_enrolments)
    app.router.add_route("*", "/_emulator/grades", _grades)
    app.router.add_route("*", "/_emulator/faults", _faults)
    app.router.add_route("*", "/_emulator/stats", _stats)
    app.router.add_route("*", "/_emulator/config", _config)
    app.router.add_post("/_emulator/users", _users)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/health", _health)
    if emulator.store is not None:
        app.cleanup_ctx.append(_persist)
    return app


async def _persist(app: web.Application) -> AsyncIterator[None]:
    emulator = app[EMULATOR_KEY]
    store = emulator.store
    assert store is not None

    async def loop() -> None:
        while True:
            await asyncio.sleep(0.5)
            if emulator.state.dirty:
                store.save(emulator.state)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    store.save(emulator.state)


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


@asynccontextmanager
async def running_emulator(
    seed: Mapping[str, Any] | Path,
    *,
    faults: Faults | None = None,
    state_file: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    **site_overrides: Any,
) -> AsyncIterator[RunningEmulator]:
    """Serve an emulator on ``host:port`` (0 = ephemeral) for the duration of the block."""
    data = load_seed_file(seed) if isinstance(seed, Path) else seed
    store = SqliteStore(state_file) if state_file is not None else None
    emulator = Emulator(
        data, faults, store, {k: v for k, v in site_overrides.items() if v is not None}
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
