"""The applied ledger: what applying a command records, what it refuses, what it forgets."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from schemas.commands import CommandKind, MoodleCommand
from schemas.enrolment import EnrolmentStatus, EnrolmentTuple, LedgerEntry
from streams.domain.ledger import (
    apply,
    apply_all,
    compact,
    empty_ledger,
    owned_active,
    recent_removals,
    record_foreign,
)
from tests.unit.domain.builders import COURSE, entry, ledger_of

T0 = datetime(2026, 9, 1, 8, 0)
HOUR = timedelta(hours=1)
STUDENT = EnrolmentTuple("student", 1_788_000_000, 1_800_000_000, False)
ACTIVE, SUSPENDED, UNENROLLED = (
    EnrolmentStatus.ACTIVE,
    EnrolmentStatus.SUSPENDED,
    EnrolmentStatus.UNENROLLED,
)


def command(
    kind: CommandKind, user: str = "1", approved_at: datetime | None = None
) -> MoodleCommand:
    if kind is CommandKind.CHANGE_ROLE:
        teacher = replace(STUDENT, role="teacher")
        return MoodleCommand(kind, COURSE, user, teacher, previous_role="student")
    tuple_ = replace(STUDENT, suspend=kind is CommandKind.SUSPEND)
    return MoodleCommand(kind, COURSE, user, tuple_, approved_at=approved_at)


def test_an_enrolment_is_recorded_whole_and_owned() -> None:
    ledger = apply(empty_ledger(COURSE), command(CommandKind.ENROL), T0)
    assert ledger.entries == {"1": LedgerEntry(COURSE, "1", STUDENT, ACTIVE, True, T0)}


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (CommandKind.ENROL, ACTIVE),
        (CommandKind.REACTIVATE, ACTIVE),
        (CommandKind.CHANGE_ROLE, ACTIVE),
        (CommandKind.SUSPEND, SUSPENDED),
        (CommandKind.UNENROL, UNENROLLED),
    ],
)
def test_the_status_each_command_leaves(kind: CommandKind, status: EnrolmentStatus) -> None:
    after = apply(ledger_of([entry("1", T0, SUSPENDED)]), command(kind), T0 + HOUR)
    assert after.entries["1"].status is status
    assert after.entries["1"].enrolment == command(kind).enrolment


def test_since_moves_only_when_the_status_changes() -> None:
    ledger = ledger_of([entry("1", T0)])
    resent = apply(ledger, command(CommandKind.ENROL), T0 + HOUR)  # new times, still active
    assert resent.entries["1"].since == T0
    suspended = apply(resent, command(CommandKind.SUSPEND), T0 + 2 * HOUR)
    assert suspended.entries["1"].since == T0 + 2 * HOUR


def test_moodle_ids_carry_over() -> None:
    held = replace(entry("1", T0), moodle_user_id=4242, moodle_course_id=17)
    after = apply(ledger_of([held]), command(CommandKind.SUSPEND), T0 + HOUR)
    assert (after.entries["1"].moodle_user_id, after.entries["1"].moodle_course_id) == (4242, 17)


def test_an_approved_removal_is_recorded_as_approved() -> None:
    approved = command(CommandKind.SUSPEND, approved_at=T0 + HOUR)
    after = apply(ledger_of([entry("1", T0)]), approved, T0 + 2 * HOUR)
    assert after.entries["1"].approved_at == T0 + HOUR
    reenrolled = apply(after, command(CommandKind.REACTIVATE), T0 + 3 * HOUR)
    assert reenrolled.entries["1"].approved_at is None


def test_applying_never_writes_over_a_foreign_enrolment() -> None:
    ledger = record_foreign(empty_ledger(COURSE), "1", EnrolmentTuple("editingteacher"), T0)
    with pytest.raises(ValueError, match=r"ownership: '1' in '2026-INF101' is not ours"):
        apply(ledger, command(CommandKind.ENROL), T0)
    with pytest.raises(ValueError, match="ownership"):
        apply_all(ledger, [command(CommandKind.ENROL, "2"), command(CommandKind.SUSPEND)], T0)


def test_other_users_entries_are_kept() -> None:
    ledger = apply_all(
        empty_ledger(COURSE), [command(CommandKind.ENROL, "1"), command(CommandKind.ENROL, "2")], T0
    )
    ledger = apply(ledger, command(CommandKind.SUSPEND, "1"), T0 + HOUR)
    assert {u: e.status for u, e in ledger.entries.items()} == {"1": SUSPENDED, "2": ACTIVE}


@pytest.mark.parametrize(("suspend", "status"), [(False, ACTIVE), (True, SUSPENDED)])
def test_a_foreign_enrolment_is_noted_whole_and_not_owned(
    suspend: bool, status: EnrolmentStatus
) -> None:
    found = EnrolmentTuple("editingteacher", 5, 6, suspend)
    ledger = record_foreign(ledger_of([entry("2", T0)]), "1", found, T0 + HOUR)
    assert ledger.entries["1"] == LedgerEntry(COURSE, "1", found, status, False, T0 + HOUR)
    assert set(ledger.entries) == {"1", "2"}


def test_owned_active_counts_only_our_active_enrolments() -> None:
    ledger = ledger_of(
        [
            entry("1", T0),
            entry("2", T0),
            entry("3", T0),
            entry("4", T0, SUSPENDED),
            entry("5", T0, UNENROLLED),
            entry("6", T0, owned=False),
            entry("7", T0, SUSPENDED, owned=False),
        ]
    )
    assert owned_active(ledger) == 3


def test_recent_removals_are_ours_after_since_split_by_approval() -> None:
    approved = replace(entry("4", T0 + HOUR, SUSPENDED), approved_at=T0 + HOUR)
    ledger = ledger_of(
        [
            entry("1", T0 + HOUR, SUSPENDED),  # counts
            entry("2", T0 + HOUR, UNENROLLED),  # counts
            entry("3", T0, SUSPENDED),  # exactly at ``since``: outside
            approved,  # counts, but approved
            entry("5", T0 + HOUR, SUSPENDED, owned=False),  # not ours
            entry("6", T0 + HOUR),  # active: not a removal
            entry("7", T0 + HOUR, SUSPENDED),  # being re-added: excluded
        ]
    )
    assert recent_removals(ledger, T0, excluding={"7"}) == (2, 3)
    assert recent_removals(ledger, T0) == (3, 4)
    assert recent_removals(ledger, T0 - timedelta(seconds=1)) == (4, 5)


def test_compact_forgets_only_old_unenrolments() -> None:
    ledger = ledger_of(
        [
            entry("1", T0, UNENROLLED),  # older than ``before``: forgotten
            entry("2", T0 + HOUR, UNENROLLED),  # exactly ``before``: kept
            entry("3", T0, SUSPENDED),  # suspended: still in Moodle, kept
            entry("4", T0),
            entry("5", T0, owned=False),
        ]
    )
    compacted = compact(ledger, T0 + HOUR)
    assert compacted.course == COURSE
    assert compacted.entries == {u: e for u, e in ledger.entries.items() if u != "1"}


def test_compact_returns_the_same_ledger_when_nothing_is_forgotten() -> None:
    ledger = ledger_of([entry("1", T0, UNENROLLED), entry("2", T0)])
    assert compact(ledger, T0) is ledger
