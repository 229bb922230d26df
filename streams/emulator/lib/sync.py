"""The enrolment syncs Moodle runs inside a call: enrol_cohort's observer of cohort membership
(enrol/cohort/locallib.php) and enrol_meta's mirror of a linked course (enrol/meta/locallib.php)."""

from __future__ import annotations

from streams.emulator.functions.base import Ctx
from streams.emulator.lib.enrollib import enrol_user, unenrol_user, update_user_enrol
from streams.emulator.state import (
    ENROL_EXT_REMOVED_SUSPENDNOROLES,
    ENROL_EXT_REMOVED_UNENROL,
    ENROL_INSTANCE_ENABLED,
    ENROL_USER_ACTIVE,
    ENROL_USER_SUSPENDED,
    Instance,
    State,
    UserEnrolment,
)

# -- cohort sync --------------------------------------------------------------------------------


def cohort_add_member(ctx: Ctx, cohortid: int, userid: int) -> None:
    """cohort_add_member() and enrol_cohort's observer: enrol at once in every enabled instance."""
    state, txn = ctx.state, ctx.txn
    members = state.cohort_members.setdefault(cohortid, set())
    if userid in members:
        return
    txn.sadd(members, userid)
    txn.event("cohort_member_added")
    for inst in cohort_instances(state, cohortid):
        if inst.status != ENROL_INSTANCE_ENABLED:
            continue
        ue = state.ue.get((inst.id, userid))
        if ue is None:
            enrol_user(ctx, inst, userid, inst.roleid, 0, 0, ENROL_USER_ACTIVE)
        else:
            if ue.status == ENROL_USER_SUSPENDED:
                update_user_enrol(ctx, ue, ENROL_USER_ACTIVE, None, None)
            if inst.roleid:
                state.role_assign(
                    txn, inst.courseid, userid, (inst.roleid, "enrol_cohort", inst.id)
                )
        if inst.customint2 and inst.customint2 in state.groups:
            txn.dset(
                state.group_members.setdefault(inst.customint2, {}),
                userid,
                ("enrol_cohort", inst.id),
            )


def cohort_remove_member(ctx: Ctx, cohortid: int, userid: int) -> None:
    """cohort_remove_member(): the event fires even for non-members; unenrolaction applies."""
    state, txn = ctx.state, ctx.txn
    txn.sdiscard(state.cohort_members.setdefault(cohortid, set()), userid)
    txn.event("cohort_member_removed")
    for inst in cohort_instances(state, cohortid):
        ue = state.ue.get((inst.id, userid))
        if ue is None:
            continue
        action = (
            inst.unenrolaction
            if inst.unenrolaction is not None
            else state.site.enrol_cohort_unenrolaction
        )
        if action == ENROL_EXT_REMOVED_UNENROL:
            unenrol_user(ctx, inst, userid)
        elif ue.status != ENROL_USER_SUSPENDED:
            update_user_enrol(ctx, ue, ENROL_USER_SUSPENDED, None, None)
            if action == ENROL_EXT_REMOVED_SUSPENDNOROLES:
                state.role_unassign_all(txn, inst.courseid, userid, "enrol_cohort", inst.id)


def cohort_instances(state: State, cohortid: int) -> list[Instance]:
    return sorted(
        (i for i in state.instances.values() if i.enrol == "cohort" and i.customint1 == cohortid),
        key=lambda i: i.id,
    )


# -- meta links ---------------------------------------------------------------------------------


def meta_sync_instance(ctx: Ctx, inst: Instance) -> None:
    """enrol_meta_sync for one link: mirror the linked course's (non-meta) enrolments.

    Per user, as enrol_meta_handler::sync_with_parent_course does: active if at least one
    enrolment in the linked course is active (instance enabled, user enrolment active), with
    the earliest start and latest end of those (0 = no end), so an expired child enrolment shows
    as expired in the meta course; roles are mirrored only while active, so a user suspended in
    the child course holds the meta enrolment with no roles (moodle-ws.md §11)."""
    state, txn = ctx.state, ctx.txn
    linked = inst.customint1
    source: dict[int, tuple[int, int, int]] = {}
    for userid, iids in state.course_users.get(linked, {}).items():
        real = [state.instances[i] for i in iids if state.instances[i].enrol != "meta"]
        if not real:
            continue
        active = [
            state.ue[(i.id, userid)]
            for i in real
            if i.status == ENROL_INSTANCE_ENABLED
            and state.ue[(i.id, userid)].status == ENROL_USER_ACTIVE
        ]
        if active:
            start = min(ue.timestart for ue in active)
            ends = [ue.timeend for ue in active]
            end = 0 if 0 in ends else max(ends)
            source[userid] = (ENROL_USER_ACTIVE, start, end)
        else:
            source[userid] = (ENROL_USER_SUSPENDED, 0, 0)
    for userid, (status, start, end) in source.items():
        _mirror_user(ctx, inst, userid, status, start, end)
    for (iid, userid), ue in list(state.ue.items()):
        if iid != inst.id or userid in source:
            continue
        action = state.site.enrol_meta_unenrolaction
        if action == ENROL_EXT_REMOVED_UNENROL:
            unenrol_user(ctx, inst, userid)
        elif ue.status != ENROL_USER_SUSPENDED:
            update_user_enrol(ctx, ue, ENROL_USER_SUSPENDED, None, None)
        if action == ENROL_EXT_REMOVED_SUSPENDNOROLES:
            state.role_unassign_all(txn, inst.courseid, userid, "enrol_meta", inst.id)


def _mirror_user(ctx: Ctx, inst: Instance, userid: int, status: int, start: int, end: int) -> None:
    state, txn = ctx.state, ctx.txn
    linked = inst.customint1
    ue = state.ue.get((inst.id, userid))
    if ue is None:
        now = state.now()
        state.put_ue(
            txn, UserEnrolment(inst.id, userid, status, start, end, now, now), inst.courseid
        )
        txn.event("user_enrolment_created")
    elif (ue.status, ue.timestart, ue.timeend) != (status, start, end):
        update_user_enrol(ctx, ue, status, start, end)
    wanted = set()
    if status == ENROL_USER_ACTIVE:
        wanted = {
            r for (r, comp, _i) in state.ra.get((linked, userid), set()) if comp != "enrol_meta"
        }
    held = {
        (r, c, i)
        for (r, c, i) in state.ra.get((inst.courseid, userid), set())
        if c == "enrol_meta" and i == inst.id
    }
    for ra in held:
        if ra[0] not in wanted:
            txn.sdiscard(state.ra[(inst.courseid, userid)], ra)
            txn.event("role_unassigned")
    for roleid in sorted(wanted):
        state.role_assign(txn, inst.courseid, userid, (roleid, "enrol_meta", inst.id))
    if inst.customint2 and inst.customint2 in state.groups:
        txn.dset(
            state.group_members.setdefault(inst.customint2, {}), userid, ("enrol_meta", inst.id)
        )


def sync_meta_links(ctx: Ctx) -> None:
    """Run the meta sync for links whose linked course changed during this call."""
    seen: set[int] = set()
    while ctx.touched_courses - seen:
        courseid = min(ctx.touched_courses - seen)
        seen.add(courseid)
        for inst in [
            i
            for i in ctx.state.instances.values()
            if i.enrol == "meta" and i.customint1 == courseid
        ]:
            if inst.status == ENROL_INSTANCE_ENABLED:
                meta_sync_instance(ctx, inst)
