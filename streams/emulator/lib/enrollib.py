"""enrol_plugin::enrol_user / update_user_enrol / unenrol_user (lib/enrollib.php).

Semantics and sources: moodle-ws.md §2–3."""

from __future__ import annotations

from streams.emulator.external import coding_error
from streams.emulator.functions.base import Ctx
from streams.emulator.state import ENROL_USER_ACTIVE, Instance, UserEnrolment


def enrol_user(
    ctx: Ctx,
    inst: Instance,
    userid: int,
    roleid: int,
    timestart: int,
    timeend: int,
    status: int | None,
) -> None:
    """Insert, or update only when times or status differ; assign the role (idempotent)."""
    state, txn = ctx.state, ctx.txn
    ue = state.ue.get((inst.id, userid))
    created = ue is None
    if ue is not None:
        if (
            ue.timestart != timestart
            or ue.timeend != timeend
            or (status is not None and ue.status != status)
        ):
            update_user_enrol(ctx, ue, status, timestart, timeend)
    else:
        now = state.now()
        first = ENROL_USER_ACTIVE if status is None else status
        new = UserEnrolment(inst.id, userid, first, timestart, timeend, now, now)
        state.put_ue(txn, new, inst.courseid)
        txn.event("user_enrolment_created")
    if roleid:
        if not ctx.site_at_least("5.1"):
            user = state.users.get(userid)
            if user is None or user.deleted:
                raise coding_error("User ID does not exist or is deleted!")
        component, itemid = ("", 0) if inst.enrol == "manual" else (f"enrol_{inst.enrol}", inst.id)
        state.role_assign(txn, inst.courseid, userid, (roleid, component, itemid))
    key = (inst.courseid, userid)
    if state.site.recovergradesdefault and key not in state.grades and key in state.grade_history:
        txn.dset(state.grades, key, state.grade_history[key])
    # The after_user_enrolled hook (newer than 4.4dev) sends the welcome message on every call.
    if inst.enrol == "manual" and inst.customint1 and (created or ctx.site_at_least("4.5")):
        txn.event("welcome_message")
        wm = state.welcome_messages
        wkey = (inst.id, userid)
        txn.dset(wm, wkey, wm.get(wkey, 0) + 1)
    ctx.touched_courses.add(inst.courseid)


def update_user_enrol(
    ctx: Ctx, ue: UserEnrolment, status: int | None, timestart: int | None, timeend: int | None
) -> None:
    txn = ctx.txn
    modified = False
    for name, value in (("status", status), ("timestart", timestart), ("timeend", timeend)):
        if value is not None and getattr(ue, name) != value:
            txn.setattr(ue, name, value)
            modified = True
    if modified:
        txn.setattr(ue, "timemodified", ctx.state.now())
        txn.event("user_enrolment_updated")
        ctx.touched_courses.add(ctx.state.instances[ue.instanceid].courseid)


def unenrol_user(ctx: Ctx, inst: Instance, userid: int) -> None:
    """Silent for non-members; the last enrolment in the course takes roles, groups, grades."""
    state, txn = ctx.state, ctx.txn
    if (inst.id, userid) not in state.ue:
        return  # "weird, user not enrolled": silent
    courseid = inst.courseid
    component = f"enrol_{inst.enrol}"
    for group in [g for g in state.groups.values() if g.courseid == courseid]:
        members = state.group_members.get(group.id, {})
        if members.get(userid) == (component, inst.id):
            txn.ddel(members, userid)
    state.role_unassign_all(txn, courseid, userid, component, inst.id)
    state.drop_ue(txn, inst.id, userid, courseid)
    if not state.is_enrolled(courseid, userid):
        # Last enrolment in the course: roles, groups, grades and lastaccess go.
        state.role_unassign_all(txn, courseid, userid)
        for group in [g for g in state.groups.values() if g.courseid == courseid]:
            txn.ddel(state.group_members.get(group.id, {}), userid)
        key = (courseid, userid)
        if key in state.grades:
            txn.dset(state.grade_history, key, state.grades[key])
            txn.ddel(state.grades, key)
            txn.event("grades_deleted")
    txn.event("user_enrolment_deleted")
    ctx.touched_courses.add(courseid)
