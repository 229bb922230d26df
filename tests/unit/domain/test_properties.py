"""Properties of the domain core over random APOGÉE histories, deliveries, states and clocks.

1. Desired state equals an independent oracle over the final tables, whatever the
   delivery order, duplication and replay of the change events; with several stage
   versions per student, several elements per course, stage courses, and (Oracle)
   transactions in flight during a snapshot.
2. ``plan`` is idempotent: apply its commands to the ledger, plan again, nothing.
3. Ownership: no command ever targets an enrolment the ledger does not own.
4. The mass-removal guard never lets more than its thresholds through unapproved, per
   course and globally; and its decision equals a plain model of the documented load
   and population (foreign entries, old removals, approvals, both removal modes).
5. Grace: a contract row deleted and re-inserted within the grace window never
   causes a removal, whenever the applier happens to plan.
6. Desired entries equal a plain model of their supporting facts under any sequence of
   assertions and retractions (duplicates and strays included), batched or not.
7. Source positions order as documented: Oracle by commit SCN, SCN, txId (hex), SSN;
   PostgreSQL by LSN then txId; two different txIds never tie.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from string import hexdigits
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from schemas.commands import CommandKind
from schemas.debezium import Table
from schemas.enrolment import EnrolmentStatus
from schemas.facts import MembershipFact
from schemas.lineage import SourceRef
from schemas.mapping import CourseMappingRule, CourseTarget
from streams.domain.desired import (
    CourseChange,
    CourseDesired,
    apply_change,
    apply_changes,
    empty_desired,
)
from streams.domain.ledger import CourseLedger, apply_all, empty_ledger, owned_active
from streams.domain.ledger import recent_removals as ledger_recent
from streams.domain.mapping import CourseMapping, build_mapping
from streams.domain.plan import GlobalLoad, admit_global, plan
from streams.domain.policy import Approvals, FoldPolicy, GuardPolicy, PlanPolicy, RemovalMode
from streams.domain.positions import is_newer, position
from tests.unit.domain.apogee import Db, Record
from tests.unit.domain.budget import budget
from tests.unit.domain.builders import COURSE, assert_, entry, fact, ledger_of, retract
from tests.unit.domain.oracle import desired_from_tables
from tests.unit.domain.pipeline import T0, Pipeline

PERSON, IAE, ICE = Table.INDIVIDU, Table.INS_ADM_ETP, Table.IND_CONTRAT_ELP
REMOVALS = (CommandKind.SUSPEND, CommandKind.UNENROL)
PROPERTY = budget(150)
HEX = frozenset(hexdigits)

# -- 1. fold + route + desired == oracle(final tables) ------------------------------------

inds, anus, etps, vrss = (
    st.sampled_from([1, 2, 3]),
    st.sampled_from(["2025", "2026"]),
    st.sampled_from(["L1", "L2"]),
    st.sampled_from([1, 2]),
)
elps, occs = st.sampled_from(["E1", "E2", "E3"]), st.sampled_from([1, 2])
plain_operations = st.one_of(
    st.tuples(st.just("person"), inds, st.sampled_from([None, 0, 1])),
    st.tuples(st.just("del_person"), inds),
    st.tuples(
        st.just("iae"), anus, inds, etps, vrss, occs, st.sampled_from("EA"), st.sampled_from("PN")
    ),
    st.tuples(st.just("del_iae"), anus, inds, etps, vrss, occs),
    st.tuples(st.just("ice"), anus, inds, etps, vrss, elps, st.sampled_from("NNO")),
    st.tuples(st.just("del_ice"), anus, inds, etps, vrss, elps),
    st.tuples(st.just("rekey_ice"), anus, inds, etps, vrss, elps, elps),
)
operations = st.one_of(
    plain_operations,
    st.tuples(st.just("snapshot")),
    # A snapshot taken while the operation's transaction is in flight (see Db.racing_snapshot).
    st.tuples(st.just("race"), plain_operations),
)

# Every student starts enrolled (person, valid IA in L1 v1 with two followed elements, and
# in L1 v2, a second stage version of the same year, following E1 again), so the random
# operations have something to break, restore and move around.
INITIAL_LOAD: list[tuple[Any, ...]] = [
    op
    for ind in (1, 2, 3)
    for op in (
        ("person", ind, 0),
        ("iae", "2026", ind, "L1", 1, 1, "E", "P"),
        ("ice", "2026", ind, "L1", 1, "E1", "N"),
        ("ice", "2026", ind, "L1", 1, "E2", "N"),
        ("iae", "2026", ind, "L1", 2, 1, "E", "P"),
        ("ice", "2026", ind, "L1", 2, "E1", "N"),
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
        anu, ind, etp, vrs, occ, eta, pmt = args
        db.write(
            IAE,
            cod_anu=anu,
            cod_ind=ind,
            cod_etp=etp,
            cod_vrs_vet=vrs,
            num_occ_iae=occ,
            eta_iae=eta,
            eta_pmt_iae=pmt,
        )
    elif kind == "del_iae":
        anu, ind, etp, vrs, occ = args
        db.delete(IAE, cod_anu=anu, cod_ind=ind, cod_etp=etp, cod_vrs_vet=vrs, num_occ_iae=occ)
    elif kind == "ice":
        anu, ind, etp, vrs, elp, tem = args
        db.write(
            ICE,
            cod_anu=anu,
            cod_ind=ind,
            cod_etp=etp,
            cod_vrs_vet=vrs,
            cod_elp=elp,
            tem_prc_ice=tem,
        )
    elif kind == "del_ice":
        anu, ind, etp, vrs, elp = args
        db.delete(ICE, cod_anu=anu, cod_ind=ind, cod_etp=etp, cod_vrs_vet=vrs, cod_elp=elp)
    elif kind == "rekey_ice":
        anu, ind, etp, vrs, elp, new = args
        old, clash = (anu, ind, etp, vrs, elp), (anu, ind, etp, vrs, new)
        if old in db.tables[ICE] and clash not in db.tables[ICE]:
            db.rekey(ICE, db.tables[ICE][old], cod_elp=new)
    elif kind == "race" and db.oracle:
        db.racing_snapshot(lambda: play(db, args[0]))
    elif kind == "race":  # PostgreSQL loses this race (docs/domain.md, Known limits)
        play(db, args[0])
        db.records.extend(db.snapshot())
    else:
        db.records.extend(db.snapshot())
    db.commit()


@st.composite
def deliveries(draw: st.DrawFn, records: list[Record]) -> list[Record]:
    """Any order (partitions interleave), some records twice, then a replayed prefix."""
    order = list(draw(st.permutations(records)))
    for at, record in draw(
        st.lists(st.tuples(st.integers(0, len(order)), st.sampled_from(records)), max_size=10)
        if records
        else st.just([])
    ):
        order.insert(at, record)
    return order + records[: draw(st.integers(0, len(records)))]


# Course mappings, each with the oracle's plain reading of it: element → course templates
# (``{anu}``, ``{elp}``) instead of the default, and the stage-version course template.
SHARED = CourseTarget(course="{cod_anu}-SHARED")
MAPPINGS: dict[str, tuple[CourseMapping, dict[str, tuple[str, ...]], str | None]] = {
    "default": (build_mapping(()), {}, None),
    # E1 and E2 share a course; E2 keeps its own too.
    "shared": (
        build_mapping(
            [
                CourseMappingRule(rule_id="e1", cod_elp="E1", targets=(SHARED,)),
                CourseMappingRule(rule_id="e2", cod_elp="E2", targets=(SHARED,), keep_default=True),
            ]
        ),
        {"E1": ("{anu}-SHARED",), "E2": ("{anu}-SHARED", "{anu}-{elp}")},
        None,
    ),
    "stage": (
        build_mapping((), stage_template="{cod_anu}-{cod_etp}-V{cod_vrs_vet}"),
        {},
        "{anu}-{etp}-V{vrs}",
    ),
}


@PROPERTY
@given(
    st.lists(operations, max_size=40),
    st.booleans(),
    st.sampled_from([None, frozenset("P")]),
    st.sampled_from(sorted(MAPPINGS)),
    st.data(),
)
def test_desired_state_equals_the_oracle_whatever_the_delivery(
    ops: list[tuple[Any, ...]],
    oracle_style: bool,
    paid: frozenset[str] | None,
    mapping_name: str,
    data: st.DataObject,
) -> None:
    db = Db(oracle=oracle_style)
    for op in INITIAL_LOAD + ops:
        play(db, op)
    mapping, element_courses, stage_course = MAPPINGS[mapping_name]
    pipeline = Pipeline(FoldPolicy(paid_states=paid), mapping)
    pipeline.feed(data.draw(deliveries(db.records)))
    expected = desired_from_tables(db.tables, paid, element_courses, stage_course)
    event(f"oracle holds {min(len(expected), 3)}+ enrolments")
    entries = [e for d in pipeline.courses.values() for e in d.entries.values()]
    event(f"up to {max((len(e.facts) for e in entries), default=0)} facts on an entry")
    assert pipeline.desired() == expected


# -- random (desired, ledger, policy, now) for plan properties ------------------------------

USERS = [str(u) for u in range(1, 13)]
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
hours = st.integers(0, 6).map(lambda h: T0 + h * HOUR)
# Ledger times: lately, or around the 24 h window's edge (now is T0..T0+6h), or long ago.
moments = st.one_of(
    hours,
    st.sampled_from(
        [T0 - 3 * DAY, T0 - DAY - HOUR, T0 - DAY, T0 - DAY + HOUR, T0 + 5 * HOUR - DAY]
    ),
)
roles = st.sampled_from(["student", "teacher"])
withdrawn_choice = st.tuples(st.just("withdrawn"), roles, moments)
desired_choice = st.one_of(
    st.none(),
    st.tuples(st.just("present"), roles),
    withdrawn_choice,
    withdrawn_choice,  # twice: removals are what the guard is about
    st.tuples(st.just("both"), roles, moments),  # present in one role, withdrawn in the other
)
held_choice = st.tuples(
    st.sampled_from(list(EnrolmentStatus)),
    st.sampled_from([True, True, True, False]),  # owned, mostly
    roles,
    moments,
    st.booleans(),
)
ledger_choice = st.one_of(st.none(), held_choice, held_choice)
policies = st.builds(
    PlanPolicy,
    grace=st.sampled_from([timedelta(0), HOUR, 3 * HOUR]),
    removal=st.sampled_from(list(RemovalMode)),
    guard=st.builds(
        GuardPolicy,
        course_max_count=st.integers(0, 8),
        course_max_share=st.sampled_from([0.0, 0.2, 0.25, 0.5, 1.0]),
        share_floor=st.integers(0, 12),
    ),
)
OTHER_ROLE = {"student": "teacher", "teacher": "student"}


@st.composite
def course_states(draw: st.DrawFn) -> tuple[CourseDesired, CourseLedger]:
    """Wanted, withdrawn (in one role or two) and absent users; ledger entries ours or
    foreign, in any status, lately or long ago, removals approved or not."""
    desired, entries = empty_desired(COURSE), []
    for user in USERS:
        choice = draw(desired_choice)
        if choice is not None and choice[0] == "present":
            desired = assert_(desired, user, T0 - DAY, role=choice[1])
        elif choice is not None:
            _, role, at = choice
            desired = retract(assert_(desired, user, at - DAY, role=role), user, at, role=role)
            if choice[0] == "both":
                desired = assert_(desired, user, T0 - DAY, role=OTHER_ROLE[role], elp="X")
        held = draw(ledger_choice)
        if held is not None:
            status, owned, role, since, approved = held
            made = entry(user, since, status, owned, role)
            removal = status is not EnrolmentStatus.ACTIVE and owned and approved
            entries.append(replace(made, approved_at=since) if removal else made)
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


def documented_guard(
    desired: CourseDesired,
    ledger: CourseLedger,
    policy: PlanPolicy,
    now: datetime,
    approval: datetime | None,
) -> tuple[set[str], set[str], datetime | None]:
    """(admitted, held, next_due), read plainly from docs/domain.md."""
    wanted = {e.user for e in desired.entries.values() if e.present}
    unenrol = policy.removal is RemovalMode.UNENROL
    ours = {u: e for u, e in ledger.entries.items() if e.owned}
    active = EnrolmentStatus.ACTIVE
    removable = {
        u
        for u, e in ours.items()
        if (e.status is not EnrolmentStatus.UNENROLLED if unenrol else e.status is active)
    }
    pending = removable - wanted
    due_at = {}
    for user in pending:
        withdrawn = [e.since for e in desired.entries.values() if e.user == user]
        due_at[user] = max([ledger.entries[user].since, *withdrawn]) + policy.grace
    due = {u for u in pending if due_at[u] <= now}
    start = now - policy.guard.window
    removed_lately = {u for u, e in ours.items() if e.status is not active and e.since > start}
    unapproved = {u for u in removed_lately if ours[u].approved_at is None}
    recent = unapproved - wanted - pending
    population = {u for u in wanted if u not in ledger.entries or u in ours}
    population |= pending | removed_lately
    covered = {u for u in due if approval is not None and due_at[u] <= approval}
    load, base, guard = len(recent) + len(pending) - len(covered), len(population), policy.guard
    trips = load > guard.course_max_count or (
        base >= guard.share_floor and load > guard.course_max_share * base
    )
    waiting = [due_at[u] for u in pending - due]
    next_due = min(waiting, default=None)
    if trips and due - covered:
        return covered, due - covered, next_due
    return due, set(), next_due


@PROPERTY
@given(course_states(), policies, hours, st.one_of(st.none(), hours))
def test_the_guard_decides_as_documented(
    state: tuple[CourseDesired, CourseLedger],
    policy: PlanPolicy,
    now: datetime,
    approval: datetime | None,
) -> None:
    desired, ledger = state
    ok = Approvals() if approval is None else Approvals(courses={COURSE: approval})
    result = plan(desired, ledger, policy, now, ok)
    admitted, held, next_due = documented_guard(desired, ledger, policy, now, approval)
    event(f"{'held' if held else 'admitted' if admitted else 'nothing due'}")
    assert {r.command.user for r in result.removals} == admitted
    assert {r.command.user for r in result.held} == held
    assert result.next_due == next_due
    for removal in result.removals:
        stamped = approval is not None and removal.due <= approval
        assert removal.command.approved_at == (approval if stamped else None)


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


@budget(400)
@given(
    st.integers(1, 40),
    steps,
    st.integers(0, 8),
    st.sampled_from([0.1, 0.3, 1.0, 1.0]),
    st.integers(0, 20),
    st.one_of(st.integers(0, 12), st.just(10**6)),
    st.sampled_from([0.05, 0.2, 1.0]),
    st.sampled_from(list(RemovalMode)),
)
def test_guard_never_lets_more_than_its_thresholds_through_unapproved(
    size: int,
    timeline: list[tuple[int, dict[str, int]]],
    max_count: int,
    max_share: float,
    floor: int,
    global_max: int,
    global_share: float,
    mode: RemovalMode,
) -> None:
    guard = GuardPolicy(
        window=timedelta(hours=2),
        course_max_count=max_count,
        course_max_share=max_share,
        share_floor=floor,
        global_max_count=global_max,
        global_max_share=global_share,
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
        active = sum(owned_active(ledger[c]) for c in COURSES)
        assert len(recent) <= global_max
        assert active + len(recent) < floor or len(recent) <= global_share * (active + len(recent))
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


# -- 6. desired entries equal a plain model of their facts ----------------------------------

# Facts of users 1 and 2: two elements, each through two stage versions of one year.
FACTS = [fact(u, elp, vrs=vrs) for u in ("1", "2") for elp in ("E1", "E2") for vrs in (1, 2)]
course_changes = st.lists(
    st.tuples(
        st.sampled_from(FACTS),
        st.sampled_from(["student", "teacher"]),
        st.booleans(),  # asserted or retracted (strays and duplicates included)
        st.integers(0, 3),  # minutes after the previous change
    ),
    max_size=30,
)


@PROPERTY
@given(course_changes, st.integers(1, 4))
def test_desired_entries_follow_their_facts(
    changes: list[tuple[MembershipFact, str, bool, int]], batch: int
) -> None:
    """Present while a fact supports it; ``since`` moves only when presence changes; the
    withdrawn facts are the one whose retraction emptied it. Batched or not, the same."""
    model: dict[tuple[str, str], tuple[set[MembershipFact], datetime, set[MembershipFact]]] = {}
    one_by_one, batched, pending = empty_desired(COURSE), empty_desired(COURSE), []
    now = T0
    for f, role, asserted, minutes in changes:
        now += timedelta(minutes=minutes)
        member, step = (f.user, role), CourseChange(COURSE, role, f, asserted)
        facts, since, withdrawn = model.get(member, (set(), now, set()))
        if asserted and f not in facts:
            since, withdrawn = (since, withdrawn) if facts else (now, set())
            model[member] = (facts | {f}, since, withdrawn)
        elif not asserted and f in facts:
            left = facts - {f}
            model[member] = (left, since, withdrawn) if left else (left, now, {f})
        one_by_one = apply_change(one_by_one, step, now)
        pending.append(step)
        if len(pending) == batch:  # a burst: the agent applies it at the time of its last change
            batched, pending = apply_changes(batched, pending, now), []
    seen = {m: (set(e.facts), e.since, set(e.withdrawn)) for m, e in one_by_one.entries.items()}
    assert seen == model
    assert all(len(set(e.facts)) == len(e.facts) for e in one_by_one.entries.values())  # a set
    if not pending:
        assert {m: set(e.facts) for m, e in batched.entries.items()} == {
            m: facts for m, (facts, _, _) in model.items()
        }


# -- 7. source positions ----------------------------------------------------------------------

# Small ranges, so that ties (and so every tie-break) come up often.
scns = st.integers(0, 30)
hex_txids = st.one_of(st.integers(0, 40), st.integers(0, 2**64 - 1)).map(lambda n: f"{n:016x}")
oracle_refs = st.builds(
    lambda scn, commit, tx, ssn: SourceRef(
        "T", "k", scn, tx, None if commit is None else scn + commit, ssn
    ),
    scns,
    st.one_of(st.none(), st.integers(0, 30)),  # commit SCN (snapshot reads have none)
    st.one_of(st.none(), hex_txids),
    st.integers(0, 2),
)


def oracle_order(ref: SourceRef) -> tuple[int, int, int, int]:
    """As documented: commit SCN (else SCN), SCN, txId read as hex, SSN."""
    commit = ref.log if ref.commit_log is None else ref.commit_log
    return (commit, ref.log, int(ref.tx, 16) if ref.tx else 0, ref.seq)


@PROPERTY
@given(oracle_refs, oracle_refs)
def test_oracle_positions_order_by_commit_scn_then_scn_then_txid_then_ssn(
    a: SourceRef, b: SourceRef
) -> None:
    assert is_newer(a, b) == (oracle_order(a) > oracle_order(b))
    assert not (is_newer(a, b) and is_newer(b, a))


postgres_refs = st.builds(
    lambda lsn, tx: SourceRef("T", "k", lsn, None if tx is None else str(tx)),
    scns,
    st.one_of(st.none(), st.integers(1, 40), st.integers(1, 10**12)),
)


@PROPERTY
@given(postgres_refs, postgres_refs)
def test_postgresql_positions_order_by_lsn_then_numeric_txid(a: SourceRef, b: SourceRef) -> None:
    def order(ref: SourceRef) -> tuple[int, int]:
        return (ref.log, int(ref.tx) if ref.tx else 0)

    assert is_newer(a, b) == (order(a) > order(b))


# Each connector's txIds are one kind: fixed-width hex (Oracle), decimal (PostgreSQL), or
# something else entirely (text with a character that is not a hex digit).
txid_kinds = st.one_of(
    st.lists(hex_txids, min_size=2, max_size=2, unique=True),
    st.lists(st.integers(1, 10**12).map(str), min_size=2, max_size=2, unique=True),
    st.lists(
        st.text(min_size=1).filter(lambda t: not HEX.issuperset(t)),
        min_size=2,
        max_size=2,
        unique=True,
    ),
)


@PROPERTY
@given(txid_kinds, st.text(min_size=1).filter(lambda t: not HEX.issuperset(t)), hex_txids)
def test_two_different_txids_never_tie(pair: list[str], other: str, hex_tx: str) -> None:
    a, b = (SourceRef("T", "k", 5, tx, 9) for tx in pair)
    assert is_newer(a, b) != is_newer(b, a)
    # and a txId that is not hex never ties with one that is
    assert position(SourceRef("T", "k", 5, other, 9)) != position(SourceRef("T", "k", 5, hex_tx, 9))
