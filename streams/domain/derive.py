"""Derivation rules: a student's current rows → membership facts.

A student holds an ``element`` fact for each contract element to follow
(``TEM_PRC_ICE='N'``) of a stage version in which an administrative enrolment is in
force (``ETA_IAE='E'``, and paid when the site requires it), provided the person has a
student number (``COD_ETU``, the Moodle ``idnumber``). Each such stage version also
gives a ``stage`` fact (for stage-version course rules and cohorts).
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.facts import FactKind, MembershipFact
from streams.domain.changes import AdminEnrolment, ContractElement, GroupKey, Person
from streams.domain.policy import FoldPolicy
from streams.domain.student import Group, Slot, StudentState

__all__ = ["element_facts", "facts_of", "group_facts", "user_of", "valid_enrolment"]


def user_of(state: StudentState) -> str | None:
    """The Moodle user key (``COD_ETU``), or ``None`` while the person has none."""
    person = state.person
    if person is None or not isinstance(person.values, Person):
        return None
    return person.values.cod_etu


def _counts(values: AdminEnrolment, policy: FoldPolicy) -> bool:
    if values.eta_iae not in policy.valid_iae_states:
        return False
    return policy.paid_states is None or values.eta_pmt_iae in policy.paid_states


def valid_enrolment(group: Group, policy: FoldPolicy) -> Slot | None:
    """The lowest-occurrence administrative enrolment of the group that is in force, if any."""
    for occurrence in sorted(group.iae):
        slot = group.iae[occurrence]
        if isinstance(slot.values, AdminEnrolment) and _counts(slot.values, policy):
            return slot
    return None


def _followed(slot: Slot | None, policy: FoldPolicy) -> bool:
    return (
        slot is not None
        and isinstance(slot.values, ContractElement)
        and slot.values.tem_prc_ice in policy.followed_ice_states
    )


def element_facts(
    state: StudentState, key: GroupKey, elements: Iterable[str], policy: FoldPolicy
) -> frozenset[MembershipFact]:
    """Element facts for some contract elements of one group."""
    user, group = user_of(state), state.groups.get(key)
    enrolment = None if group is None else valid_enrolment(group, policy)
    if user is None or group is None or enrolment is None:
        return frozenset()
    return frozenset(
        MembershipFact(
            user,
            FactKind.ELEMENT,
            key[0],
            key[1],
            key[2],
            elp,
            cod_ind=state.cod_ind,
            provenance=(group.ice[elp].ref, enrolment.ref),
        )
        for elp in elements
        if _followed(group.ice.get(elp), policy)
    )


def _stage_fact(
    state: StudentState, key: GroupKey, policy: FoldPolicy
) -> frozenset[MembershipFact]:
    user, group = user_of(state), state.groups.get(key)
    enrolment = None if group is None else valid_enrolment(group, policy)
    if user is None or enrolment is None:
        return frozenset()
    fact = MembershipFact(
        user,
        FactKind.STAGE,
        key[0],
        key[1],
        key[2],
        cod_ind=state.cod_ind,
        provenance=(enrolment.ref,),
    )
    return frozenset((fact,))


def group_facts(
    state: StudentState, key: GroupKey, policy: FoldPolicy
) -> frozenset[MembershipFact]:
    """Every fact of one stage-version group: its stage fact and its element facts."""
    group = state.groups.get(key)
    elements = () if group is None else group.ice.keys()
    return _stage_fact(state, key, policy) | element_facts(state, key, elements, policy)


def facts_of(state: StudentState, policy: FoldPolicy) -> frozenset[MembershipFact]:
    """All current facts of a student (used after a mapping change, and by tests)."""
    return frozenset().union(*(group_facts(state, key, policy) for key in state.groups))
