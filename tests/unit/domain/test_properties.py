"""Properties of the domain core over random APOGÉE histories, deliveries, states and clocks.

1. Desired state equals an independent oracle over the final tables, whatever the
   delivery order, duplication and replay of the change events.
2. ``plan`` is idempotent: apply its commands to the ledger, plan again, nothing.
3. Ownership: no command ever targets an enrolment the ledger does not own.
4. The mass-removal guard never lets more than its thresholds through unapproved.
5. Grace: a contract row deleted and re-inserted within the grace window never
   causes a removal, whenever the applier happens to plan.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.commands import CommandKind
from schemas.debezium import Table
from schemas.enrolment import EnrolmentStatus
from streams.domain.desired import CourseDesired, empty_desired
from streams.domain.ledger import CourseLedger, apply_all, empty_ledger, owned_active
from streams.domain.ledger import recent_removals as ledger_recent
from streams.domain.plan import GlobalLoad, admit_global, plan
from streams.domain.policy import Approvals, FoldPolicy, GuardPolicy, PlanPolicy, RemovalMode
from tests.unit.domain.apogee import Db, Record
from tests.unit.domain.builders import COURSE, assert_, entry, ledger_of, retract
from tests.unit.domain.oracle import desired_from_tables
from tests.unit.domain.pipeline import T0, Pipeline

PERSON, IAE, ICE = Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP
REMOVALS = (CommandKind.SUSPEND, CommandKind.UNENROL)
PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# -- 1. fold + route + desired == oracle(final tables) ------------------------------------

inds, anus, etps = (
    st.sampled_from([1, 2, 3]),
    st.sampled_from(["2025", "2026"]),
    st.sampled_from(["L1", "L2"]),
)
elps, occs = st.sampled_from(["E1", "E2", "E3"]), st.sampled_from([1, 2])
operations = st.one_of(
    st.tuples(st.just("person"), inds, st.sampled_from([None, 0, 1])),
    st.tuples(st.just("del_person"), inds),
    st.tuples(st.just("iae"), anus, inds, etps, occs, st.sampled_from("EA"), st.sampled_from("PN")),
    st.tuples(st.just("del_iae"), anus, inds, etps, occs),
    st.tuples(st.just("ice"), anus, inds, etps, elps, st.sampled_from("NNO")),
    st.tuples(st.just("del_ice"), anus, inds, etps, elps),
    st.tuples(st.just("rekey_ice"), anus, inds, etps, elps, elps),
    st.tuples(st.just("snapshot")),
)

# Every student starts enrolled (person, valid IA in L1, two followed elements), so the
# random operations have something to break, restore and move around.
INITIAL_LOAD: list[tuple[Any, ...]] = [
    op
    for ind in (1, 2, 3)
    for op in (
        ("person", ind, 0),
        ("iae", "2026", ind, "L1", 1, "E", "P"),
        ("ice", "2026", ind, "L1", "E1", "N"),
        ("ice", "2026", ind, "L1", "E2", "N"),
    )
]


def play(db: Db, op: tuple[Any, ...]) -> None:
    """Run one operation against the simulated database (and its connector)."""
    kind, *args = op
    if kind == "person":
        ind, etu = args
        db.write(PERSON, cod_ind=ind, cod_etu=None if etu is None else 21_000_000 + 10 * ind + etu)
    elif kind == "del_person":
        db.delete(PERSON, cod_ind=args[0])
    elif kind == "iae":
        anu, ind, etp, occ, eta, pmt = args
        db.write(
            IAE,
            cod_anu=anu,
            cod_ind=ind,
            cod_etp=etp,
            cod_vrs_vet=1,
            num_occ_iae=occ,
            eta_iae=eta,
            eta_pmt_iae=pmt,
        )
    elif kind == "del_iae":
        anu, ind, etp, occ = args
        db.delete(IAE, cod_anu=anu, cod_ind=ind, cod_etp=etp, cod_vrs_vet=1, num_occ_iae=occ)
    elif kind == "ice":
        anu, ind, etp, elp, tem = args
        db.write(
            ICE, cod_anu=anu, cod_ind=ind, cod_etp=etp, cod_vrs_vet=1, cod_elp=elp, tem_prc_ice=tem
        )
    elif kind == "del_ice":
        anu, ind, etp, elp = args
        db.delete(ICE, cod_anu=anu, cod_ind=ind, cod_etp=etp, cod_vrs_vet=1, cod_elp=elp)
    elif kind == "rekey_ice":
        anu, ind, etp, elp, new = args
        old, clash = (anu, ind, etp, 1, elp), (anu, ind, etp, 1, new)
        if old in db.tables[ICE] and clash not in db.tables[ICE]:
            db.rekey(ICE, db.tables[ICE][old], cod_elp=new)
    else:
        db.records.extend(db.snapshot())
    db.commit()


@st.composite
def deliveries(draw: st.DrawFn, records: list[Record]) -> list[Record]:
    """Any order (partitions interleave), some records twice, then a replayed prefix."""
    order = list(draw(st.permutations(records)))
    for position, record in draw(
        st.lists(st.tuples(st.integers(0, len(order)), st.sampled_from(records)), max_size=10)
        if records
        else st.just([])
    ):
        order.insert(position, record)
    return order + records[: draw(st.integers(0, len(records)))]


@PROPERTY
@given(
    st.lists(operations, max_size=40),
    st.booleans(),
    st.sampled_from([None, frozenset("P")]),
    st.data(),
)
def test_desired_state_equals_the_oracle_whatever_the_delivery(
    ops: list[tuple[Any, ...]], oracle_style: bool, paid: frozenset[str] | None, data: st.DataObject
) -> None:
    db = Db(oracle=oracle_style)
    for op in INITIAL_LOAD + ops:
        play(db, op)
    pipeline = Pipeline(FoldPolicy(paid_states=paid))
    pipeline.feed(data.draw(deliveries(db.records)))
    expected = desired_from_tables(db.tables, paid)
    event(f"oracle holds {min(len(expected), 3)}+ enrolments")
    assert pipeline.desired() == expected


# -- random (desired, ledger, policy, now) for plan properties ------------------------------

USERS = [str(u) for u in range(1, 9)]
hours = st.integers(0, 6).map(lambda h: T0 + timedelta(hours=h))
desired_choice = st.one_of(
    st.none(),
    st.tuples(st.just("present"), st.sampled_from(["student", "teacher"])),
    st.tuples(st.just("withdrawn"), hours),
)
ledger_choice = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(list(EnrolmentStatus)),
        st.booleans(),
        st.sampled_from(["student", "teacher"]),
        hours,
    ),
)
policies = st.builds(
    PlanPolicy,
    grace=st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=3)]),
    removal=st.sampled_from(list(RemovalMode)),
    guard=st.builds(
        GuardPolicy,
        course_max_count=st.integers(0, 6),
        course_max_share=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
        share_floor=st.integers(0, 10),
    ),
)


@st.composite
def course_states(draw: st.DrawFn) -> tuple[CourseDesired, CourseLedger]:
    desired, entries = empty_desired(COURSE), []
    for user in USERS:
        choice = draw(desired_choice)
        if choice is not None and choice[0] == "present":
            desired = assert_(desired, user, T0, role=choice[1])
        elif choice is not None:
            desired = retract(assert_(desired, user, T0), user, choice[1])
        held = draw(ledger_choice)
        if held is not None:
            status, owned, role, since = held
            entries.append(entry(user, since, status, owned, role))
    return desired, ledger_of(entries)


approvals = st.one_of(st.just(Approvals()), hours.map(lambda at: Approvals(courses={COURSE: at})))


@PROPERTY
@given(course_states(), policies, hours, approvals)
def test_plan_is_idempotent(
    state: tuple[CourseDesired, CourseLedger], policy: PlanPolicy, now: datetime, ok: Approvals
) -> None:
    desired, ledger = state
    first = plan(desired, ledger, policy, now, ok)
    after = apply_all(ledger, first.commands, now)
    assert plan(desired, after, policy, now, ok).commands == ()


@PROPERTY
@given(course_states(), policies, hours, approvals)
def test_plan_never_touches_what_the_ledger_does_not_own(
    state: tuple[CourseDesired, CourseLedger], policy: PlanPolicy, now: datetime, ok: Approvals
) -> None:
    desired, ledger = state
    for command in plan(desired, ledger, policy, now, ok).commands:
        held = ledger.entries.get(command.user)
        assert held is None or held.owned, f"{command.kind} on a foreign enrolment"
        if command.kind in REMOVALS:
            assert held is not None, "removal of an enrolment we never made"


# -- 4. the guard, over time, per course and globally ---------------------------------------

COURSES = ("A", "B", "C")
# Step lengths around the 30 min grace and the 2 h window, so trickles are explored.
steps = st.lists(
    st.tuples(
        st.sampled_from([1, 10, 29, 31, 45, 61, 119, 150]),
        st.dictionaries(st.sampled_from(COURSES), st.integers(0, 12), min_size=1),
    ),
    min_size=2,
    max_size=12,
)


@settings(PROPERTY, max_examples=400)
@given(
    st.integers(1, 40),
    steps,
    st.integers(0, 8),
    st.sampled_from([0.1, 0.3, 1.0, 1.0]),
    st.integers(0, 20),
    st.one_of(st.integers(0, 12), st.just(10**6)),
    st.sampled_from(list(RemovalMode)),
)
def test_guard_never_lets_more_than_its_thresholds_through_unapproved(
    size: int,
    timeline: list[tuple[int, dict[str, int]]],
    max_count: int,
    max_share: float,
    floor: int,
    global_max: int,
    mode: RemovalMode,
) -> None:
    guard = GuardPolicy(
        window=timedelta(hours=2),
        course_max_count=max_count,
        course_max_share=max_share,
        share_floor=floor,
        global_max_count=global_max,
        global_max_share=1.0,
    )
    policy = PlanPolicy(grace=timedelta(minutes=30), removal=mode, guard=guard)
    users = [str(u) for u in range(1, size + 1)]
    desired = {c: empty_desired(c) for c in COURSES}
    ledger = {c: empty_ledger(c) for c in COURSES}
    for c in COURSES:
        for user in users:
            desired[c] = assert_(desired[c], user, T0)
    removed: list[tuple[str, datetime]] = []
    now = T0
    for minutes, withdrawals in [(0, {}), *timeline]:
        now += timedelta(minutes=minutes)
        for c, count in withdrawals.items():
            present = [e.user for e in desired[c].entries.values() if e.present]
            for user in present[:count]:
                desired[c] = retract(desired[c], user, now)
        plans = [plan(desired[c], ledger[c], policy, now) for c in COURSES]
        window = now - guard.window
        counts = [ledger_recent(ledger[c], window) for c in COURSES]
        load = GlobalLoad(
            sum(unapproved for unapproved, _ in counts),
            sum(owned_active(ledger[c]) + counts[i][1] for i, c in enumerate(COURSES)),
        )
        for p in admit_global(plans, load, policy):
            ledger[p.course] = apply_all(ledger[p.course], p.commands, now)
            removed += [(p.course, now) for r in p.removals]
        recent = [(c, at) for c, at in removed if at > window]
        assert len(recent) <= global_max
        for c in COURSES:
            in_window = sum(1 for course, _ in recent if course == c)
            base = (
                sum(1 for e in ledger[c].entries.values() if e.status is EnrolmentStatus.ACTIVE)
                + in_window
            )
            assert in_window <= max_count
            assert base < floor or in_window <= max_share * base


# -- 5. grace: delete + re-insert within the window never removes ---------------------------

flaps = st.lists(
    st.tuples(st.sampled_from(["E1", "E2"]), st.integers(0, 600), st.integers(0, 3599)), max_size=6
)


@PROPERTY
@given(flaps, st.lists(st.integers(0, 7200), max_size=8))
def test_grace_suppresses_delete_and_reinsert_flapping(
    edits: list[tuple[str, int, int]], plan_at: list[int]
) -> None:
    """Contract rows are deleted at ``t`` and re-inserted at ``t + gap`` (gap < grace = 1 h);
    the applier plans at arbitrary moments in between. No removal is ever planned."""
    db, pipeline = Db(), Pipeline()
    db.write(PERSON, cod_ind=1, cod_etu=21000001)
    db.write(
        IAE, cod_anu="2026", cod_ind=1, cod_etp="L1", cod_vrs_vet=1, num_occ_iae=1, eta_iae="E"
    )
    for elp in ("E1", "E2"):
        db.write(
            ICE,
            cod_anu="2026",
            cod_ind=1,
            cod_etp="L1",
            cod_vrs_vet=1,
            cod_elp=elp,
            tem_prc_ice="N",
        )
    pipeline.feed(db.records, T0)
    timeline: list[tuple[int, str, str]] = [(-1, "plan", "")]  # enrolled before any edit
    timeline += [(at, "plan", "") for at in plan_at]
    for elp, start, gap in edits:
        timeline += [(start, "delete", elp), (start + gap, "insert", elp)]
    ledgers: dict[str, CourseLedger] = {}
    policy = PlanPolicy(grace=timedelta(hours=1))
    for seconds, action, elp in [*sorted(timeline), (7200, "plan", "")]:
        now = T0 + timedelta(seconds=seconds)
        key = dict(cod_anu="2026", cod_ind=1, cod_etp="L1", cod_vrs_vet=1, cod_elp=elp)
        if action == "plan":
            for course, desired in pipeline.courses.items():
                ledger = ledgers.get(course) or empty_ledger(course)
                commands = plan(desired, ledger, policy, now).commands
                assert not [c for c in commands if c.kind in REMOVALS], (seconds, commands)
                ledgers[course] = apply_all(ledger, commands, now)
            continue
        mark = len(db.records)
        if action == "delete" and (key["cod_anu"], 1, "L1", 1, elp) in db.tables[ICE]:
            db.delete(ICE, **key)
        elif action == "insert":
            db.write(ICE, **key, tem_prc_ice="N")
        pipeline.feed(db.records[mark:], now)
