"""The course-keyed tables, one entry per member, read a course at a time.

Desired state is keyed ``course␟user␟role`` and the ledger ``course␟user``: a change to one
membership writes one small entry (and one changelog record), whatever the size of the
course. The applier reads a whole course by key prefix: a range scan in RocksDB (keys are
sorted), a filter over the dictionary in the memory store used by tests.

Tables here are faust tables in the worker and plain dicts in unit tests; the only thing
asked of them is ``get``/``__setitem__``/``__delitem__`` and, for the scan, either faust's
store or ``items()``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import datetime
from typing import Any

from schemas.course_events import CourseMeta, WriteInDoubt
from schemas.enrolment import DesiredEnrolment, LedgerEntry
from streams.applier.ports import Everywhere
from streams.domain.desired import CourseDesired
from streams.domain.ledger import CourseLedger
from streams.pipeline.codec import decode_desired, decode_doubt, decode_ledger, decode_meta, encode

__all__ = ["SEP", "CourseTables", "desired_key", "ledger_key", "scan_prefix"]

log = logging.getLogger(__name__)

SEP = "\x1f"  # ASCII unit separator: never in a Moodle idnumber typed by a person
EVERYWHERE = b"*"
FAUST_OFFSET_KEY = b"__faust\0offset__"  # faust.stores.rocksdb.Store.offset_key

Table = MutableMapping[Any, Any]


def desired_key(course: str, user: str, role: str) -> bytes:
    return f"{course}{SEP}{user}{SEP}{role}".encode()


def ledger_key(course: str, user: str) -> bytes:
    return f"{course}{SEP}{user}".encode()


def scan_prefix(table: Table, prefix: str) -> Iterator[tuple[str, bytes]]:
    """Entries whose key starts with ``prefix``, from the partitions this worker owns.

    Keys are bytes in every store (the tables' key type is ``bytes``)."""
    store = getattr(table, "data", None)
    actives = getattr(store, "_dbs_for_actives", None)
    if actives is not None:  # faust RocksDB store: sorted keys, seek and stop
        start = prefix.encode()
        for db in actives():
            for key, value in db.items(from_key=start):
                if not key.startswith(start):
                    break
                if key != FAUST_OFFSET_KEY:  # faust's own entry, in every partition's db
                    yield key.decode(), value
        return
    data = getattr(store, "data", table)  # faust memory store, or a plain dict
    start = prefix.encode()
    for key, value in list(data.items()):
        if key.startswith(start):
            yield key.decode(), value


def get_raw(table: Table, key: bytes) -> bytes | None:
    """One value, straight from the store: faust's ``table.get`` checks ``key in store`` then
    reads it (two RocksDB lookups) and runs its sensors on every call."""
    store = getattr(table, "data", None)
    actives = getattr(store, "_dbs_for_actives", None)
    if actives is None:
        data = getattr(store, "data", table)
        value = data.get(key)
        return None if value is None else bytes(value)
    for db in actives():
        value = db.get(key)
        if value is not None:
            return bytes(value)
    return None


class CourseTables:
    """Desired state, ledger and course records: the applier's :class:`CourseState`."""

    def __init__(
        self,
        desired: Table,
        ledger: Table,
        courses: Table,
        control: Table,
        doubts: Table | None = None,
    ) -> None:
        self.desired_table = desired
        self.ledger_table = ledger
        self.courses_table = courses
        self.control_table = control
        # writes sent to Moodle that no result has settled yet (see WritesSent)
        self.doubts_table: Table = {} if doubts is None else doubts

    # -- reads (CourseState) ---------------------------------------------------------------
    def desired(self, course: str) -> CourseDesired:
        entries = {}
        for _, raw in scan_prefix(self.desired_table, course + SEP):
            entry = decode_desired(raw)
            entries[(entry.user, entry.role)] = entry
        return CourseDesired(course, entries)

    def ledger(self, course: str) -> CourseLedger:
        entries = {}
        for _, raw in scan_prefix(self.ledger_table, course + SEP):
            entry = decode_ledger(raw)
            entries[entry.user] = entry
        return CourseLedger(course, entries)

    def desired_for(self, course: str, users: Iterable[str]) -> CourseDesired:
        """Only these users' entries (every role of theirs): one short scan per user."""
        entries = {}
        for user in users:
            for _, raw in scan_prefix(self.desired_table, f"{course}{SEP}{user}{SEP}"):
                entry = decode_desired(raw)
                entries[(entry.user, entry.role)] = entry
        return CourseDesired(course, entries)

    def ledger_for(self, course: str, users: Iterable[str]) -> CourseLedger:
        entries = {}
        for user in users:
            raw = get_raw(self.ledger_table, ledger_key(course, user))
            if raw is not None:
                entries[user] = decode_ledger(raw)
        return CourseLedger(course, entries)

    def meta(self, course: str) -> CourseMeta | None:
        raw = get_raw(self.courses_table, course.encode())
        return None if raw is None else decode_meta(raw)

    def everywhere(self) -> Everywhere:
        meta = self.everywhere_meta()
        return Everywhere(meta.approved_at, meta.rejected_at)

    def everywhere_meta(self) -> CourseMeta:
        raw = self.control_table.get(EVERYWHERE)
        return CourseMeta("*") if raw is None else decode_meta(raw)

    def courses(self) -> Iterable[str]:
        return [key.decode() for key in list(self.courses_table.keys())]

    def doubts(self, course: str) -> dict[str, WriteInDoubt]:
        """user → the write sent to Moodle that no folded result has settled yet (a few
        entries per course while its calls are out, none once they are answered)."""
        found: dict[str, WriteInDoubt] = {}
        for key, raw in scan_prefix(self.doubts_table, course + SEP):
            try:
                doubt = decode_doubt(raw)
            except ValueError as exc:  # never written so: planning must not fail on it
                log.error("unreadable write in doubt %r skipped: %s", key, exc)
                continue
            found[doubt.sent.command.user] = doubt
        return found

    # -- writes (only from the course agent, inside its event) ----------------------------
    def put_desired(self, entry: DesiredEnrolment) -> None:
        self.desired_table[desired_key(entry.course, entry.user, entry.role)] = encode(entry)

    def drop_desired(self, course: str, user: str, role: str) -> None:
        key = desired_key(course, user, role)
        if get_raw(self.desired_table, key) is not None:
            del self.desired_table[key]

    def desired_entry(self, course: str, user: str, role: str) -> DesiredEnrolment | None:
        raw = get_raw(self.desired_table, desired_key(course, user, role))
        return None if raw is None else decode_desired(raw)

    def ledger_entry(self, course: str, user: str) -> LedgerEntry | None:
        raw = get_raw(self.ledger_table, ledger_key(course, user))
        return None if raw is None else decode_ledger(raw)

    def put_ledger(self, entry: LedgerEntry) -> None:
        self.ledger_table[ledger_key(entry.course, entry.user)] = encode(entry)

    def put_doubt(self, doubt: WriteInDoubt) -> None:
        key = ledger_key(doubt.course, doubt.sent.command.user)
        self.doubts_table[key] = encode(doubt)

    def settle_doubt(self, course: str, user: str, at: datetime, writer: str) -> None:
        """A result of ``writer``'s at ``at`` was folded for (course, user): the write in
        doubt is settled if ``writer`` sent it at ``at`` or before (a later one of its own is
        still out), or if another applier sent it (superseded: the result is of a write made
        after the course changed hands; times of different machines are not compared)."""
        key = ledger_key(course, user)
        raw = get_raw(self.doubts_table, key)
        if raw is None:
            return
        doubt = decode_doubt(raw)
        if doubt.writer != writer or doubt.at <= at:
            del self.doubts_table[key]

    def put_meta(self, meta: CourseMeta) -> None:
        self.courses_table[meta.course.encode()] = encode(meta)

    def put_everywhere(self, meta: CourseMeta) -> None:
        self.control_table[EVERYWHERE] = encode(meta)
