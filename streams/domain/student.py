"""The per-student view: every source row of one ``COD_IND`` with the position that last wrote it.

Deleted rows stay as slots with ``values=None`` (tombstone memory), so a late,
older change to a deleted row cannot bring it back. Values are immutable; updates
copy the small dictionaries they touch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from schemas.debezium import Table
from schemas.lineage import SourceRef
from streams.domain.changes import GroupKey, RowChange, RowValues

__all__ = ["Group", "Slot", "StudentState", "empty_student", "slot_of", "with_change"]


@dataclass(frozen=True, slots=True)
class Slot:
    """One source row: the change that last wrote it, and its values (``None`` = deleted)."""

    ref: SourceRef
    values: RowValues | None


_NO_SLOTS: Mapping[int, Slot] = MappingProxyType({})
_NO_ELEMENTS: Mapping[str, Slot] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Group:
    """One stage-version enrolment: its ``INS_ADM_ETP`` occurrences and contract elements."""

    iae: Mapping[int, Slot] = field(default_factory=lambda: _NO_SLOTS)
    ice: Mapping[str, Slot] = field(default_factory=lambda: _NO_ELEMENTS)


_NO_GROUPS: Mapping[GroupKey, Group] = MappingProxyType({})
_EMPTY_GROUP = Group()


@dataclass(frozen=True, slots=True)
class StudentState:
    cod_ind: int
    person: Slot | None = None
    groups: Mapping[GroupKey, Group] = field(default_factory=lambda: _NO_GROUPS)


def empty_student(cod_ind: int) -> StudentState:
    return StudentState(cod_ind)


def slot_of(state: StudentState, change: RowChange) -> Slot | None:
    """The slot the change would write, if it exists."""
    if change.table is Table.INDIVIDU:
        return state.person
    assert change.group is not None
    group = state.groups.get(change.group)
    if group is None:
        return None
    if change.table is Table.INS_ADM_ETP:
        return group.iae.get(change.item)  # type: ignore[arg-type]
    return group.ice.get(change.item)  # type: ignore[arg-type]


def with_change(state: StudentState, change: RowChange) -> StudentState:
    """The state with the change's slot written (no position check here: see ``fold``)."""
    slot = Slot(change.ref, change.values)
    if change.table is Table.INDIVIDU:
        return replace(state, person=slot)
    assert change.group is not None
    group = _with_slot(state.groups.get(change.group, _EMPTY_GROUP), change, slot)
    return replace(state, groups={**state.groups, change.group: group})


def _with_slot(group: Group, change: RowChange, slot: Slot) -> Group:
    if change.table is Table.INS_ADM_ETP:
        assert isinstance(change.item, int)
        return Group({**group.iae, change.item: slot}, group.ice)
    assert isinstance(change.item, str)
    return Group(group.iae, {**group.ice, change.item: slot})
