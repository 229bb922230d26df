"""Request items sent to Moodle and the response shapes read back (unknown keys ignored)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.moodle.encoding import Param

__all__ = [
    "Cohort",
    "CohortMember",
    "CohortMemberIds",
    "CohortMembers",
    "EnrolledUser",
    "Enrolment",
    "EnrolmentMethod",
    "GroupMember",
    "GroupMembers",
    "MetaLink",
    "MoodleCourse",
    "MoodleGroup",
    "MoodleUser",
    "NewCohort",
    "RoleAssignment",
    "SiteInfo",
    "Unenrolment",
    "UserCourse",
    "WsWarning",
]


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolment:
    """One row of enrol_manual_enrol_users. Always sent as the full tuple: omitted times and
    ``suspend`` would be reset by Moodle (moodle-ws.md §2), so nothing is left implicit."""

    userid: int
    courseid: int
    roleid: int
    timestart: int = 0
    timeend: int = 0
    suspend: bool = False

    def as_param(self) -> dict[str, Param]:
        return {
            "roleid": self.roleid,
            "userid": self.userid,
            "courseid": self.courseid,
            "timestart": self.timestart,
            "timeend": self.timeend,
            "suspend": int(self.suspend),
        }


@dataclass(frozen=True, slots=True)
class Unenrolment:
    userid: int
    courseid: int
    roleid: int | None = None  # ignored by Moodle ≤5.1, rejected from 5.2: sent only where accepted

    def as_param(self, with_roleid: bool) -> dict[str, Param]:
        row: dict[str, Param] = {"userid": self.userid, "courseid": self.courseid}
        if with_roleid and self.roleid is not None:
            row["roleid"] = self.roleid
        return row


@dataclass(frozen=True, slots=True)
class CohortMember:
    """A member to add: cohort by ``idnumber`` (or ``id``), user by ``id`` (or ``username``)."""

    cohort: str | int
    user: str | int
    cohorttype: Literal["id", "idnumber"] = "idnumber"
    usertype: Literal["id", "username"] = "id"

    def as_param(self) -> dict[str, Param]:
        return {
            "cohorttype": {"type": self.cohorttype, "value": str(self.cohort)},
            "usertype": {"type": self.usertype, "value": str(self.user)},
        }


@dataclass(frozen=True, slots=True)
class CohortMemberIds:
    cohortid: int
    userid: int

    def as_param(self) -> dict[str, Param]:
        return {"cohortid": self.cohortid, "userid": self.userid}


@dataclass(frozen=True, slots=True)
class NewCohort:
    idnumber: str
    name: str
    category: Literal["system"] | int | str = "system"  # "system", a category id, or idnumber
    description: str = ""
    visible: bool = True

    def as_param(self) -> dict[str, Param]:
        if self.category == "system":
            cat: dict[str, Param] = {"type": "system", "value": ""}
        elif isinstance(self.category, int):
            cat = {"type": "id", "value": str(self.category)}
        else:
            cat = {"type": "idnumber", "value": self.category}
        return {
            "categorytype": cat,
            "name": self.name,
            "idnumber": self.idnumber,
            "description": self.description,
            "visible": self.visible,
        }


@dataclass(frozen=True, slots=True)
class MetaLink:
    metacourseid: int
    courseid: int
    creategroup: bool = False

    def as_param(self, with_creategroup: bool = True) -> dict[str, Param]:
        row: dict[str, Param] = {"metacourseid": self.metacourseid, "courseid": self.courseid}
        if with_creategroup:
            row["creategroup"] = self.creategroup
        return row


@dataclass(frozen=True, slots=True)
class GroupMember:
    groupid: int
    userid: int

    def as_param(self) -> dict[str, Param]:
        return {"groupid": self.groupid, "userid": self.userid}


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """A row of core_role_assign_roles / core_role_unassign_roles: the context by ``contextid``
    or by ``contextlevel`` + ``instanceid`` (e.g. :meth:`in_course`). Unassigning removes only
    the manual assignment (component ''), never a role held through an enrol plugin."""

    roleid: int
    userid: int
    contextid: int | None = None
    contextlevel: str | None = None
    instanceid: int | None = None

    @classmethod
    def in_course(cls, roleid: int, userid: int, courseid: int) -> RoleAssignment:
        return cls(roleid, userid, contextlevel="course", instanceid=courseid)

    @property
    def courseid(self) -> int | None:
        """The course, when given by level and instance (what batches are split by)."""
        return self.instanceid if self.contextlevel == "course" else None

    def as_param(self) -> dict[str, Param]:
        row: dict[str, Param] = {"roleid": self.roleid, "userid": self.userid}
        if self.contextid is not None:
            row["contextid"] = self.contextid
        if self.contextlevel is not None:
            row["contextlevel"] = self.contextlevel
        if self.instanceid is not None:
            row["instanceid"] = self.instanceid
        return row


# -- responses ---------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SiteInfo(_Model):
    sitename: str = ""
    username: str = ""
    userid: int
    release: str
    version: str
    functions: list[dict[str, str | float]] = Field(default_factory=list)

    @property
    def release_tuple(self) -> tuple[int, int]:
        """``"4.5.3 (Build: …)"`` → (4, 5); ``"5.2dev+"`` → (5, 2)."""
        match = re.match(r"(\d+)\.(\d+)", self.release)
        if match is None:
            raise ValueError(f"unparseable Moodle release {self.release!r}")
        return int(match.group(1)), int(match.group(2))

    def at_least(self, major: int, minor: int) -> bool:
        return self.release_tuple >= (major, minor)

    @property
    def unenrol_accepts_roleid(self) -> bool:
        """MDL-51152 removed the unused ``roleid`` of enrol_manual_unenrol_users in 5.2."""
        return not self.at_least(5, 2)


class RoleRef(_Model):
    roleid: int
    shortname: str = ""
    name: str = ""


class GroupRef(_Model):
    id: int
    name: str = ""


class MoodleUser(_Model):
    id: int
    username: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    fullname: str = ""
    email: str | None = None
    idnumber: str | None = None
    suspended: bool | None = None


class CourseRef(_Model):
    id: int
    fullname: str = ""
    shortname: str = ""


class EnrolledUser(MoodleUser):
    """``groups`` and ``enrolledcourses`` are absent (here: empty) when Moodle has none."""

    roles: list[RoleRef] = Field(default_factory=list)
    groups: list[GroupRef] = Field(default_factory=list)
    enrolledcourses: list[CourseRef] = Field(default_factory=list)


class MoodleCourse(_Model):
    id: int
    shortname: str
    fullname: str = ""
    idnumber: str | None = None  # only returned with moodle/course:update
    visible: int | None = None
    categoryid: int | None = None
    enrollmentmethods: list[str] = Field(default_factory=list)


class Cohort(_Model):
    id: int
    name: str
    idnumber: str
    description: str = ""
    visible: bool = True


class CohortMembers(_Model):
    cohortid: int
    userids: list[int] = Field(default_factory=list)


class MoodleGroup(_Model):
    id: int
    courseid: int
    name: str
    idnumber: str = ""
    description: str = ""


class GroupMembers(_Model):
    groupid: int
    userids: list[int] = Field(default_factory=list)


class UserCourse(_Model):
    """A course of core_enrol_get_users_courses (active enrolments only; carries idnumber)."""

    id: int
    shortname: str
    fullname: str = ""
    idnumber: str = ""
    visible: int = 1
    enrolledusercount: int | None = None


class EnrolmentMethod(_Model):
    """core_enrol_get_course_enrolment_methods: only enabled instances of plugins with
    get_enrol_info() (self, guest) — never manual, database, cohort or meta."""

    id: int
    courseid: int
    type: str
    name: str = ""
    status: bool | str = ""
    wsfunction: str | None = None


class WsWarning(_Model):
    warningcode: str
    message: str = ""
    item: str | None = None
    itemid: int | None = None
