"""The applier's view of Moodle: ids by idnumber (cached), a course's roster, batched writes.

It turns domain names (course and user ``idnumber``, role shortname) into Moodle ids and
back, and nothing else: which calls to make is the plan's business, how to send them
(batches, bisection, retries, pacing) the client's (:mod:`streams.moodle`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from streams.moodle import Enrolment, ItemOutcome, MoodleClient, RoleAssignment, Unenrolment

log = logging.getLogger(__name__)

__all__ = ["REQUIRED_CAPABILITIES", "Found", "MoodleGateway", "Roster"]

REQUIRED_CAPABILITIES = (
    "webservice/rest:use",
    "enrol/manual:enrol",
    "enrol/manual:unenrol",
    "moodle/role:assign",  # with the roles it gives allowed (role_allow_assign)
    "moodle/course:view",
    "moodle/course:viewhiddencourses",
    "moodle/course:viewparticipants",
    "moodle/course:enrolreview",  # onlyactive / onlysuspended
    "moodle/user:viewdetails",
    "moodle/user:viewalldetails",  # idnumbers: without it foreign enrolments go unrecognised
)
"""What the reconciler's service user needs (README "The reconciler worker")."""


@dataclass(frozen=True, slots=True)
class Found:
    """An enrolment read from Moodle: whose, which role, suspended or not."""

    user: str | None  # the user's key field (idnumber by default); None if not visible
    moodle_user_id: int
    role: str
    suspended: bool


@dataclass(frozen=True, slots=True)
class Roster:
    moodle_course_id: int
    enrolments: tuple[Found, ...]


class MoodleGateway:
    """Lookups and writes for the applier, over one :class:`MoodleClient`."""

    def __init__(self, client: MoodleClient, user_field: str, role_ids: Mapping[str, int]) -> None:
        self.client = client
        self.user_field = user_field
        self.role_ids = dict(role_ids)
        self._role_names = {rid: name for name, rid in role_ids.items()}
        self._users: dict[str, int] = {}
        self._courses: dict[str, int] = {}

    # -- ids -------------------------------------------------------------------------------
    def role_id(self, role: str) -> int | None:
        return self.role_ids.get(role)

    def known_user(self, user: str) -> int | None:
        return self._users.get(user)

    def remember_user(self, user: str, moodle_id: int) -> None:
        self._users[user] = moodle_id

    async def user_ids(self, users: Iterable[str]) -> dict[str, int]:
        """Moodle ids of those users that exist; cached once found (ids never change)."""
        wanted = sorted({u for u in users if u not in self._users})
        if wanted:
            for found in await self.client.core_user_get_users_by_field(self.user_field, wanted):
                key = getattr(found, self.user_field, None)
                if key:
                    self._users[str(key)] = found.id
        return {u: self._users[u] for u in users if u in self._users}

    async def course_id(self, course: str) -> int | None:
        if course not in self._courses:
            found = await self.client.core_course_get_courses_by_field("idnumber", course)
            if not found:
                return None
            self._courses[course] = found[0].id
        return self._courses[course]

    # -- reads -----------------------------------------------------------------------------
    async def roster(self, course: str, moodle_course_id: int) -> Roster:
        """Every enrolment of the course, with the role and suspended flag of each."""
        everyone = await self.client.core_enrol_get_enrolled_users(moodle_course_id)
        suspended = (  # a new, empty course (the usual case) needs no second read
            {
                u.id
                for u in await self.client.core_enrol_get_enrolled_users(
                    moodle_course_id, onlysuspended=True
                )
            }
            if everyone
            else set()
        )
        found = tuple(
            Found(
                self._key_of(u),
                u.id,
                self._role_of(u.roles),
                u.id in suspended,
            )
            for u in everyone
        )
        for item in found:
            if item.user is not None:
                self._users.setdefault(item.user, item.moodle_user_id)
        return Roster(moodle_course_id, found)

    def _key_of(self, user: object) -> str | None:
        value = getattr(user, self.user_field, None)
        return str(value) if value else None

    def _role_of(self, roles: Sequence[object]) -> str:
        """The highest known role (lowest id among configured ones), else the first shortname."""
        names = [str(getattr(r, "shortname", "")) for r in roles]
        ranked = sorted((self.role_ids[n], n) for n in names if n in self.role_ids)
        if ranked:
            return ranked[0][1]
        return names[0] if names and names[0] else "none"

    # -- writes ----------------------------------------------------------------------------
    async def enrol(self, rows: Sequence[Enrolment]) -> list[ItemOutcome[Enrolment]]:
        return await self.client.enrol_manual_enrol_users(rows) if rows else []

    async def unenrol(self, rows: Sequence[Unenrolment]) -> list[ItemOutcome[Unenrolment]]:
        return await self.client.enrol_manual_unenrol_users(rows) if rows else []

    async def unassign(self, role: str, moodle_user_id: int, moodle_course_id: int) -> None:
        """Remove the role a user held before a change of role (after the new one was added)."""
        role_id = self.role_id(role)
        if role_id is None:
            return
        row = RoleAssignment.in_course(role_id, moodle_user_id, moodle_course_id)
        for outcome in await self.client.core_role_unassign_roles([row]):
            if outcome.error is not None:
                log.warning(
                    "could not unassign role %s of user %s in course %s: %s",
                    role,
                    moodle_user_id,
                    moodle_course_id,
                    outcome.error,
                )
