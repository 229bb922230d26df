"""The emulator's ``/_emulator/*`` endpoints: inspect and change the site while it runs
(docs/moodle-emulator.md). None of these exist on a real Moodle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Final

from aiohttp import web
from pydantic import ValidationError

from streams.emulator.app import Emulator
from streams.emulator.cost import PROFILES
from streams.emulator.faults import Faults
from streams.emulator.state import VERSIONS, add_course, make_user

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
    return web.json_response(
        {**emu.stats.as_dict(window), "workers": emu.workers.workers,
         "workers_busy": emu.workers.busy, "queued": emu.workers.queued,
         "max_queued": emu.workers.max_queued, "profile": emu.profile.name}
    )  # fmt: skip


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


async def _server(request: web.Request) -> web.Response:
    """The cost profile and the number of PHP workers, changeable between runs."""
    emu = _emu(request)
    if request.method == "POST":
        body = await request.json()
        profile = body.get("profile", emu.profile.name)
        workers = body.get("workers", emu.workers.workers)
        if profile not in PROFILES or (workers is not None and int(workers) < 1):
            return web.json_response({"error": f"bad server settings {body}"}, status=400)
        emu.profile = PROFILES[profile]
        emu.workers.resize(None if workers is None else int(workers))
    return web.json_response({"profile": emu.profile.name, "workers": emu.workers.workers})


async def _users(request: web.Request) -> web.Response:
    state = _emu(request).state
    body = await request.json()
    uid = int(body.pop("id", 0)) or state.next_id("user", state.users)
    state.users[uid] = make_user({"id": uid, **body})
    state.dirty = True
    user = asdict(state.users[uid])
    return web.json_response(
        {**user, "capabilities": sorted(user["capabilities"]),
         "assignable_roles": sorted(user["assignable_roles"])}
    )  # fmt: skip


async def _courses(request: web.Request) -> web.Response:
    """Create a course as in the seed format; default: one enabled manual instance."""
    state = _emu(request).state
    body = await request.json()
    try:
        course = add_course(state, body)
    except (TypeError, ValueError, KeyError, ValidationError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(
        {**asdict(course), "instances": [asdict(i) for i in state.instances_of(course.id)]}
    )


async def _instances(request: web.Request) -> web.Response:
    """List enrolment instances, or enable/disable those of a plugin (and course): what an
    administrator does when disabling a method, e.g. ``{"enrol": "database", "status": 1}``
    (Moodle then counts their enrolments as not active)."""
    state = _emu(request).state
    body = await request.json() if request.method == "POST" else {}
    courseid = body.get("courseid", request.query.get("courseid"))
    chosen = [
        inst
        for inst in state.instances.values()
        if (courseid is None or inst.courseid == int(courseid))
        and inst.enrol == body.get("enrol", request.query.get("enrol", inst.enrol))
    ]
    if request.method == "POST":
        if body.get("status") not in (0, 1):
            return web.json_response({"error": "status must be 0 (enabled) or 1"}, status=400)
        for inst in chosen:
            inst.status = int(body["status"])
        state.dirty = True
    return web.json_response([asdict(i) for i in chosen])


async def _reset(request: web.Request) -> web.Response:
    _emu(request).reset()
    return web.json_response({"ok": True})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "version": _emu(request).state.site.version})


def add_controls(app: web.Application, emulator: Emulator) -> None:
    app[EMULATOR_KEY] = emulator
    app.router.add_get("/_emulator/state", _get_state)
    app.router.add_get("/_emulator/enrolments", _get_enrolments)
    app.router.add_route("*", "/_emulator/grades", _grades)
    app.router.add_route("*", "/_emulator/faults", _faults)
    app.router.add_route("*", "/_emulator/stats", _stats)
    app.router.add_route("*", "/_emulator/config", _config)
    app.router.add_route("*", "/_emulator/server", _server)
    app.router.add_post("/_emulator/users", _users)
    app.router.add_post("/_emulator/courses", _courses)
    app.router.add_route("*", "/_emulator/instances", _instances)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/health", _health)
    if emulator.store is not None:
        app.cleanup_ctx.append(_persist)


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
