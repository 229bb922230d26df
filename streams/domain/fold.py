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
from schemas.facts import MembershipFact
from schemas.lineage import SourceRef
from streams.domain.changes import RowChange, Tombstone
from streams.domain.derive import element_facts, facts_of, group_facts
from streams.domain.policy import FoldPolicy
from streams.domain.positions import is_newer
from streams.domain.student import StudentState, slot_of, with_change

__all__ = ["Effect", "FactAsserted", "FactRetracted", "fold", "fold_all"]


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
