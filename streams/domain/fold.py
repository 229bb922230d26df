"""The per-student fold: ``(state, change) -> (state, effects)``.

A change is applied only if it is newer, by source position, than the last change
seen for the same row (deleted rows included); duplicates, replays and late
deliveries return the *same* state object and no effects, which a caller can count.
Effects are the facts that appeared or disappeared; a fact's provenance starts with
the change that asserted or retracted it, then the rows supporting it (contract
element, administrative enrolment).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from schemas.debezium import Table
from schemas.facts import FactKind, MembershipFact
from schemas.lineage import SourceRef
from streams.domain.changes import RowChange, Tombstone
from streams.domain.derive import element_facts, facts_of, group_facts, user_of
from streams.domain.policy import FoldPolicy
from streams.domain.positions import is_newer, position
from streams.domain.student import StudentState, slot_of, with_change

__all__ = ["Effect", "FactAsserted", "FactRetracted", "fold", "fold_all", "restate"]


@dataclass(frozen=True, slots=True)
class FactAsserted:
    fact: MembershipFact


@dataclass(frozen=True, slots=True)
class FactRetracted:
    fact: MembershipFact


Effect = FactAsserted | FactRetracted


def fold(
    state: StudentState, change: RowChange | Tombstone, policy: FoldPolicy
) -> tuple[StudentState, tuple[Effect, ...]]:
    """Apply one change to one student's state."""
    if isinstance(change, Tombstone):
        return state, ()
    if change.cod_ind != state.cod_ind:
        raise ValueError(f"change for COD_IND {change.cod_ind} folded into {state.cod_ind}")
    current = slot_of(state, change)
    if current is not None and not is_newer(change.ref, current.ref):
        return state, ()
    new_state = with_change(state, change)
    before, after = _scope(state, change, policy), _scope(new_state, change, policy)
    return new_state, _diff(before, after, change.ref)


def fold_all(
    state: StudentState, changes: Iterable[RowChange | Tombstone], policy: FoldPolicy
) -> tuple[StudentState, tuple[Effect, ...]]:
    """Fold several changes in order; effects concatenated."""
    effects: list[Effect] = []
    for change in changes:
        state, more = fold(state, change, policy)
        effects.extend(more)
    return state, tuple(effects)


def restate(
    state: StudentState, change: RowChange | Tombstone, policy: FoldPolicy
) -> tuple[Effect, ...]:
    """The effects of a change delivered again after it was folded, as they stand now.

    A worker that crashes after writing a student's state but before its effects reached
    the course topic sees the same records again when it restarts: ``fold`` calls them
    duplicates, and the effects would be lost. When the row's slot holds this very change (same
    source position; not an older one: a later change to the row comes again too), this gives
    the facts in the change's scope as they are now, asserted, and every fact the scope
    could hold that it does not, retracted. Asserting a fact already held and retracting
    one not held are both no-ops downstream, so nothing changes when nothing was lost.
    Without a student number (``COD_ETU``) no fact can be named: nothing.
    """
    if isinstance(change, Tombstone) or change.cod_ind != state.cod_ind:
        return ()
    current = slot_of(state, change)
    user = user_of(state)
    if current is None or position(current.ref) != position(change.ref) or user is None:
        return ()
    held = _scope(state, change, policy)
    gone = _possible(state, change, user) - held
    return tuple(FactRetracted(_caused_by(f, change.ref)) for f in sorted(gone, key=repr)) + tuple(
        FactAsserted(_caused_by(f, change.ref)) for f in sorted(held, key=repr)
    )


def _possible(state: StudentState, change: RowChange, user: str) -> frozenset[MembershipFact]:
    """Every fact the change's scope could hold, named by identity alone."""
    if change.table is Table.INDIVIDU:
        keys = list(state.groups)
    else:
        assert change.group is not None
        keys = [change.group]
    facts: set[MembershipFact] = set()
    for key in keys:
        group = state.groups.get(key)
        elements: tuple[str, ...] = () if group is None else tuple(group.ice)
        if change.table is Table.IND_CONTRAT_ELP:
            elements = (str(change.item),)
        else:
            facts.add(MembershipFact(user, FactKind.STAGE, *key, cod_ind=state.cod_ind))
        facts.update(
            MembershipFact(user, FactKind.ELEMENT, *key, elp, cod_ind=state.cod_ind)
            for elp in elements
        )
    return frozenset(facts)


def _scope(state: StudentState, change: RowChange, policy: FoldPolicy) -> frozenset[MembershipFact]:
    """The facts a change can affect: all (person), its group (enrolment), or its element."""
    if change.table is Table.INDIVIDU:
        return facts_of(state, policy)
    assert change.group is not None
    if change.table is Table.INS_ADM_ETP:
        return group_facts(state, change.group, policy)
    return element_facts(state, change.group, (str(change.item),), policy)


def _diff(
    before: frozenset[MembershipFact], after: frozenset[MembershipFact], cause: SourceRef
) -> tuple[Effect, ...]:
    if before == after:
        return ()
    gone = tuple(FactRetracted(_caused_by(f, cause)) for f in before - after)
    return gone + tuple(FactAsserted(_caused_by(f, cause)) for f in after - before)


def _caused_by(fact: MembershipFact, cause: SourceRef) -> MembershipFact:
    """Lineage: the change that asserted or retracted a fact comes first in its provenance."""
    if fact.provenance[:1] == (cause,):
        return fact
    rest = tuple(ref for ref in fact.provenance if ref != cause)
    return replace(fact, provenance=(cause, *rest))
