"""The emulated site's data: users, courses, enrol instances, enrolments, roles, groups, grades.

All writes made while serving a web-service call go through a :class:`Txn` so that the
first error rolls every item back, as Moodle's delegated transaction does.
Seed/snapshot format: docs/moodle-emulator.md.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

VERSIONS: Final = ("4.4", "4.5", "5.1", "5.2")
# (release, $CFG->version as site_info prints it: PHP renders 2023112400.00 as "2023112400",
# plugin version of the core enrol plugins). 4.4 is the 4.4dev build observed in §11.
RELEASES: Final[Mapping[str, tuple[str, str]]] = {
    "4.4": ("4.4dev (Build: 20231124)", "2023112400"),
    "4.5": ("4.5.3 (Build: 20250317)", "2024100703"),
    "5.1": ("5.1 (Build: 20251006)", "2025100600"),
    "5.2": ("5.2dev (Build: 20260105)", "2026010500"),
}
PLUGIN_VERSIONS: Final[Mapping[str, str]] = {
    "4.4": "2023100900",
    "4.5": "2024100700",
    "5.1": "2025100600",
    "5.2": "2025100600",
}

ENROL_USER_ACTIVE: Final = 0
ENROL_USER_SUSPENDED: Final = 1
ENROL_INSTANCE_ENABLED: Final = 0
ENROL_EXT_REMOVED_UNENROL: Final = 0
ENROL_EXT_REMOVED_SUSPEND: Final = 2
ENROL_EXT_REMOVED_SUSPENDNOROLES: Final = 3


def version_key(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


@dataclass
class Site:
    version: str = "5.2"
    debug: bool = False
    rest_enabled: bool = True
    max_input_vars: int = 1000
    sitename: str = "Emulated Moodle"
    siteurl: str = "http://moodle.invalid"
    showuseridentity: list[str] = field(default_factory=lambda: ["email"])
    recovergradesdefault: bool = False
    enrol_cohort_unenrolaction: int = ENROL_EXT_REMOVED_UNENROL
    enrol_meta_unenrolaction: int = ENROL_EXT_REMOVED_SUSPENDNOROLES
    manual_plugin_enabled: bool = True
    php: str = "8.2"
    """PHP version: from 8.0, Moodle ≤4.4's wsnoinstance dies in a TypeError (HTTP 500, empty)."""

    def at_least(self, version: str) -> bool:
        return version_key(self.version) >= version_key(version)

    @property
    def php8(self) -> bool:
        return version_key(self.php) >= (8, 0)


@dataclass
class User:
    id: int
    username: str
    firstname: str = ""
    lastname: str = ""
    email: str = ""
    idnumber: str = ""
    auth: str = "manual"
    deleted: bool = False
    suspended: bool = False
    confirmed: bool = True
    department: str = ""
    institution: str = ""
    lang: str = "en"
    theme: str = ""
    timezone: str = "99"
    mailformat: int = 1
    firstaccess: int = 0
    lastaccess: int = 0
    capabilities: frozenset[str] = frozenset()
    """Granted through the user's roles, as in Moodle: every token of the user sees the same."""
    assignable_roles: frozenset[int] = frozenset()
    """role_allow_assign for the user's roles (needs moodle/role:assign)."""

    def can(self, capability: str) -> bool:
        return "*" in self.capabilities or capability in self.capabilities


@dataclass
class Course:
    id: int
    shortname: str
    fullname: str = ""
    idnumber: str = ""
    visible: bool = True
    category: int = 1
    summary: str = ""
    format: str = "topics"
    startdate: int = 0
    enddate: int = 0

    @property
    def sortorder(self) -> int:
        return 10000 + self.id

    @property
    def contextid(self) -> int:
        return course_contextid(self.id)


@dataclass
class Instance:
    """A row of ``enrol``. customint1: manual = welcome message flag, cohort = cohort id,
    meta = linked course id. ``unenrolaction`` overrides the plugin-wide setting (emulator-only)."""

    id: int
    courseid: int
    enrol: str
    status: int = ENROL_INSTANCE_ENABLED
    roleid: int = 0
    customint1: int = 0
    customint2: int = 0
    unenrolaction: int | None = None


@dataclass
class UserEnrolment:
    instanceid: int
    userid: int
    status: int = ENROL_USER_ACTIVE
    timestart: int = 0
    timeend: int = 0
    timecreated: int = 0
    timemodified: int = 0


@dataclass
class Role:
    id: int
    shortname: str
    name: str = ""
    sortorder: int = 0


@dataclass
class Group:
    id: int
    courseid: int
    name: str
    description: str = ""
    descriptionformat: int = 0
    idnumber: str = ""
    enrolmentkey: str = ""


@dataclass
class Cohort:
    id: int
    idnumber: str
    name: str
    contextid: int = 1
    description: str = ""
    descriptionformat: int = 1
    visible: bool = True


@dataclass
class Report:
    """A custom report (report builder, 4.1+) on the Course participants source: the columns
    ``core_reportbuilder_retrieve_report`` returns (``functions/reportbuilder.py``)."""

    id: int
    name: str = "Enrolment methods"
    source: str = "core_course\\reportbuilder\\datasource\\participants"
    columns: tuple[str, ...] = (
        "course:idnumber",
        "user:idnumber",
        "enrol:plugin",
        "enrolment:status",
    )


@dataclass
class Category:
    id: int
    name: str
    idnumber: str = ""

    @property
    def contextid(self) -> int:
        return category_contextid(self.id)


def category_contextid(categoryid: int) -> int:
    """Emulator convention: system context is 1, category N has context 100000 + N."""
    return 100000 + categoryid


def course_contextid(courseid: int) -> int:
    """Emulator convention: course N has context 200000 + N."""
    return 200000 + courseid


@dataclass
class Token:
    """A row of external_tokens: who (``userid``) and which service (``functions``).
    Capabilities are the user's, never the token's."""

    token: str
    userid: int
    name: str = ""
    functions: frozenset[str] | None = None  # None: every emulated function


# (roleid, component, itemid) — a role assignment in a course context.
RoleAssignment = tuple[int, str, int]


class Txn:
    """Undo journal: every write records its inverse; :meth:`rollback` replays them backwards."""

    __slots__ = ("_undo", "events")

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []
        self.events: list[str] = []

    @property
    def size(self) -> int:
        """Writes recorded so far (an item that added none changed nothing)."""
        return len(self._undo)

    def dset(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        if key in d:
            old = d[key]
            self._undo.append(lambda: d.__setitem__(key, old))
        else:
            self._undo.append(lambda: d.pop(key, None))
        d[key] = value

    def ddel(self, d: dict[Any, Any], key: Any) -> None:
        if key in d:
            old = d.pop(key)
            self._undo.append(lambda: d.__setitem__(key, old))

    def sadd(self, s: set[Any], item: Any) -> None:
        if item not in s:
            s.add(item)
            self._undo.append(lambda: s.discard(item))

    def sdiscard(self, s: set[Any], item: Any) -> None:
        if item in s:
            s.discard(item)
            self._undo.append(lambda: s.add(item))

    def setattr(self, obj: object, name: str, value: Any) -> None:
        old = getattr(obj, name)
        if old != value:
            setattr(obj, name, value)
            self._undo.append(lambda: setattr(obj, name, old))

    def event(self, name: str) -> None:
        self.events.append(name)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self.events.clear()


class State:
    """In-memory tables with the indexes the emulated functions need."""

    def __init__(self, site: Site | None = None, clock: Callable[[], float] = time.time) -> None:
        self.site = site or Site()
        self.clock = clock
        self.users: dict[int, User] = {}
        self.courses: dict[int, Course] = {}
        self.categories: dict[int, Category] = {1: Category(1, "Category 1")}
        self.roles: dict[int, Role] = {}
        self.instances: dict[int, Instance] = {}
        self.course_instances: dict[int, list[int]] = {}
        self.ue: dict[tuple[int, int], UserEnrolment] = {}
        # courseid -> userid -> instance ids holding an enrolment of that user
        self.course_users: dict[int, dict[int, set[int]]] = {}
        self.ra: dict[tuple[int, int], set[RoleAssignment]] = {}
        self.groups: dict[int, Group] = {}
        self.group_members: dict[int, dict[int, tuple[str, int]]] = {}
        self.grades: dict[tuple[int, int], float] = {}
        self.grade_history: dict[tuple[int, int], float] = {}
        self.cohorts: dict[int, Cohort] = {}
        self.cohort_members: dict[int, set[int]] = {}
        self.tokens: dict[str, Token] = {}
        self.reports: dict[int, Report] = {}
        self.counters: Counter[str] = Counter()
        self.welcome_messages: Counter[tuple[int, int]] = Counter()
        self.dirty = False
        self._next: Counter[str] = Counter()

    # -- ids --------------------------------------------------------------------------------
    def next_id(self, table: str, existing: Mapping[int, object]) -> int:
        candidate = max(self._next[table], max(existing, default=0)) + 1
        self._next[table] = candidate
        return candidate

    def now(self) -> int:
        return int(self.clock())

    # -- lookups ----------------------------------------------------------------------------
    def manual_instance(self, courseid: int) -> Instance | None:
        for iid in self.course_instances.get(courseid, ()):
            inst = self.instances[iid]
            if inst.enrol == "manual":
                return inst
        return None

    def instances_of(self, courseid: int, enrol: str | None = None) -> list[Instance]:
        found = [self.instances[i] for i in self.course_instances.get(courseid, ())]
        return [i for i in found if enrol is None or i.enrol == enrol]

    def user_instances(self, courseid: int, userid: int) -> set[int]:
        return self.course_users.get(courseid, {}).get(userid, set())

    def is_enrolled(self, courseid: int, userid: int) -> bool:
        return bool(self.user_instances(courseid, userid))

    def is_active(self, courseid: int, userid: int, now: int) -> bool:
        """get_enrolled_join's onlyactive test (now rounded to 100 s as Moodle does)."""
        rounded = round(now, -2)
        for iid in self.user_instances(courseid, userid):
            inst = self.instances[iid]
            ue = self.ue[(iid, userid)]
            if (
                inst.status == ENROL_INSTANCE_ENABLED
                and ue.status == ENROL_USER_ACTIVE
                and ue.timestart < rounded
                and (ue.timeend == 0 or ue.timeend > rounded)
            ):
                return True
        return False

    def find_user(self, field_name: str, value: str) -> list[User]:
        return [u for u in self.users.values() if str(getattr(u, field_name)) == value]

    # -- counters ---------------------------------------------------------------------------
    def commit(self, txn: Txn) -> None:
        self.counters.update(txn.events)
        if txn.events or txn._undo:
            self.dirty = True

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "site": asdict(self.site),
            "categories": [asdict(c) for c in self.categories.values()],
            "roles": [asdict(r) for r in self.roles.values()],
            "users": [_user_snapshot(u) for u in self.users.values()],
            "courses": [self._course_snapshot(c) for c in self.courses.values()],
            "cohorts": [
                {**asdict(c), "members": sorted(self.cohort_members.get(c.id, ()))}
                for c in self.cohorts.values()
            ],
            "tokens": [_token_snapshot(t) for t in self.tokens.values()],
            "reports": [{**asdict(r), "columns": list(r.columns)} for r in self.reports.values()],
            "user_enrolments": [asdict(ue) for ue in self.ue.values()],
            "role_assignments": [
                {"courseid": c, "userid": u, "roleid": r, "component": comp, "itemid": item}
                for (c, u), ras in self.ra.items()
                for (r, comp, item) in sorted(ras)
            ],
            "group_members": [
                {"groupid": g, "userid": u, "component": comp, "itemid": item}
                for g, members in self.group_members.items()
                for u, (comp, item) in members.items()
            ],
            "grades": [
                {"courseid": c, "userid": u, "grade": g} for (c, u), g in self.grades.items()
            ],
            "grade_history": [
                {"courseid": c, "userid": u, "grade": g} for (c, u), g in self.grade_history.items()
            ],
            "counters": dict(self.counters),
            "welcome_messages": [
                {"instanceid": i, "userid": u, "count": n}
                for (i, u), n in self.welcome_messages.items()
            ],
        }

    def _course_snapshot(self, course: Course) -> dict[str, Any]:
        return {
            **asdict(course),
            "instances": [asdict(i) for i in self.instances_of(course.id)],
            "groups": [asdict(g) for g in self.groups.values() if g.courseid == course.id],
        }

    # -- low-level writes used by loaders and functions --------------------------------------
    def add_instance(self, inst: Instance) -> None:
        self.instances[inst.id] = inst
        self.course_instances.setdefault(inst.courseid, []).append(inst.id)

    def put_ue(self, txn: Txn, ue: UserEnrolment, courseid: int) -> None:
        txn.dset(self.ue, (ue.instanceid, ue.userid), ue)
        users = self.course_users.get(courseid)
        if users is None:
            users = {}
            txn.dset(self.course_users, courseid, users)
        held = users.get(ue.userid)
        if held is None:
            held = set()
            txn.dset(users, ue.userid, held)
        txn.sadd(held, ue.instanceid)

    def drop_ue(self, txn: Txn, instanceid: int, userid: int, courseid: int) -> None:
        txn.ddel(self.ue, (instanceid, userid))
        users = self.course_users.get(courseid, {})
        held = users.get(userid)
        if held is not None:
            txn.sdiscard(held, instanceid)
            if not held:
                txn.ddel(users, userid)

    def role_assign(self, txn: Txn, courseid: int, userid: int, ra: RoleAssignment) -> None:
        held = self.ra.get((courseid, userid))
        if held is None:
            held = set()
            txn.dset(self.ra, (courseid, userid), held)
        if ra not in held:
            txn.sadd(held, ra)
            txn.event("role_assigned")

    def role_unassign_all(
        self, txn: Txn, courseid: int, userid: int, component: str | None = None, itemid: int = 0
    ) -> None:
        held = self.ra.get((courseid, userid))
        if not held:
            return
        for ra in list(held):
            if component is None or (ra[1] == component and ra[2] == itemid):
                txn.sdiscard(held, ra)
                txn.event("role_unassigned")

    def user_roles(self, courseid: int, userid: int) -> list[Role]:
        ids = sorted({r for (r, _c, _i) in self.ra.get((courseid, userid), ())})
        return [self.roles[r] for r in ids if r in self.roles]

    def user_groups(self, courseid: int, userid: int) -> list[Group]:
        return [
            g
            for g in self.groups.values()
            if g.courseid == courseid and userid in self.group_members.get(g.id, {})
        ]


def _token_snapshot(token: Token) -> dict[str, Any]:
    return {
        "token": token.token,
        "userid": token.userid,
        "name": token.name,
        "functions": None if token.functions is None else sorted(token.functions),
    }


def _user_snapshot(user: User) -> dict[str, Any]:
    return {
        **asdict(user),
        "capabilities": sorted(user.capabilities),
        "assignable_roles": sorted(user.assignable_roles),
    }


# ------------------------------------------------------------------------------------------------
# Loading seeds and snapshots


def load_seed(data: Mapping[str, Any], clock: Callable[[], float] = time.time) -> State:
    """Build a :class:`State` from a seed (or a snapshot written by :meth:`State.snapshot`)."""
    site = Site(**data.get("site", {}))
    if site.version not in VERSIONS:
        raise ValueError(f"unknown version {site.version!r}; expected one of {VERSIONS}")
    state = State(site, clock)
    for cat in data.get("categories", []):
        state.categories[int(cat["id"])] = Category(**cat)
    for role in data.get("roles", _DEFAULT_ROLES):
        state.roles[int(role["id"])] = Role(**role)
    for user in data.get("users", []):
        state.users[int(user["id"])] = make_user(user)
    for cohort in data.get("cohorts", []):
        members = cohort.get("members", [])
        fields = {k: v for k, v in cohort.items() if k not in ("members", "category")}
        if "category" in cohort and cohort["category"] is not None:
            fields["contextid"] = category_contextid(int(cohort["category"]))
        state.cohorts[int(cohort["id"])] = Cohort(**fields)
        state.cohort_members[int(cohort["id"])] = {_user_ref(state, m) for m in members}
    for course in data.get("courses", []):
        _load_course(state, course)
    for token in data.get("tokens", []):
        _load_token(state, token)
    for report in data.get("reports", []):
        fields = {**report, "id": int(report["id"])}
        if "columns" in fields:
            fields["columns"] = tuple(fields["columns"])
        state.reports[fields["id"]] = Report(**fields)
    _load_rows(state, data)
    return state


def make_user(spec: Mapping[str, Any]) -> User:
    fields = dict(spec)
    fields["capabilities"] = frozenset(fields.get("capabilities", ()))
    fields["assignable_roles"] = frozenset(int(r) for r in fields.get("assignable_roles", ()))
    return User(**fields)


TOKEN_RE: Final = re.compile(r"[A-Za-z0-9]{32}\Z")


def _load_token(state: State, spec: Mapping[str, Any]) -> None:
    """A token row. Older seeds put capabilities on tokens: they are moved to the token's user,
    and two tokens of one user with different capabilities are refused (Moodle cannot do it)."""
    token = Token(
        token=spec["token"],
        userid=int(spec["userid"]),
        name=spec.get("name", ""),
        functions=None if spec.get("functions") is None else frozenset(spec["functions"]),
    )
    if not TOKEN_RE.match(token.token):
        log.warning(
            "token %r is not 32 letters and digits: core_webservice_get_site_info will fail "
            "with codingerror on it, as on Moodle",
            token.name or token.token[:4] + "…",
        )
    if "capabilities" in spec or "assignable_roles" in spec:
        user = state.users.get(token.userid)
        if user is None:
            raise ValueError(f"token {token.name!r}: unknown user {token.userid}")
        caps = frozenset(spec.get("capabilities", ()))
        roles = frozenset(int(r) for r in spec.get("assignable_roles", ()))
        if user.capabilities or user.assignable_roles:
            if (caps, roles) != (user.capabilities, user.assignable_roles):
                raise ValueError(
                    f"token {token.name!r}: capabilities belong to user {user.username!r}, "
                    "not to tokens; give the restricted token its own user"
                )
        else:
            user.capabilities, user.assignable_roles = caps, roles
    state.tokens[token.token] = token


def add_course(state: State, course: Mapping[str, Any]) -> Course:
    """Create a course from the seed format (``id`` optional), e.g. ``POST /_emulator/courses``."""
    spec = dict(course)
    spec["id"] = int(spec.get("id") or 0) or state.next_id("course", state.courses)
    if spec["id"] in state.courses:
        raise ValueError(f"course {spec['id']} exists")
    _load_course(state, spec)
    state.dirty = True
    return state.courses[spec["id"]]


def _load_course(state: State, course: Mapping[str, Any]) -> None:
    fields = {k: v for k, v in course.items() if k not in ("instances", "groups")}
    c = Course(**fields)
    state.courses[c.id] = c
    state.course_instances.setdefault(c.id, [])
    for spec in course.get("instances", [{"enrol": "manual"}]):
        spec = dict(spec)
        if "cohort" in spec:  # seed convenience: reference a cohort by idnumber
            ref = spec.pop("cohort")
            spec["customint1"] = next(
                (k.id for k in state.cohorts.values() if k.idnumber == ref), ref
            )
        if "linkedcourse" in spec:  # a meta instance: the course it mirrors
            spec["customint1"] = int(spec.pop("linkedcourse"))
        if "welcome" in spec:
            spec["customint1"] = int(bool(spec.pop("welcome")))
        spec.pop("courseid", None)  # present in snapshots
        enrolled = spec.pop("enrolments", [])
        iid = int(spec.pop("id", 0)) or state.next_id("enrol", state.instances)
        inst = Instance(id=iid, courseid=c.id, **spec)
        state.add_instance(inst)
        _seed_enrolments(state, inst, enrolled)
    for group in course.get("groups", []):
        g = Group(courseid=c.id, **{k: v for k, v in group.items() if k != "courseid"})
        state.groups[g.id] = g
        state.group_members.setdefault(g.id, {})


def _seed_enrolments(state: State, inst: Instance, rows: list[Any]) -> None:
    """Seed convenience: ``"enrolments": [{"userid", "roleid", "status", "timestart",
    "timeend"}]`` (or bare user ids) inside an instance, e.g. Database-method enrolments made by
    enrol_database's sync, reported by core_enrol_get_enrolled_users like any other."""
    txn = Txn()
    now = state.now()
    for row in rows:
        spec = {"userid": row} if isinstance(row, int) else dict(row)
        userid = _user_ref(state, spec["userid"])
        ue = UserEnrolment(
            inst.id, userid, int(spec.get("status", 0)), int(spec.get("timestart", 0)),
            int(spec.get("timeend", 0)), now, now,
        )  # fmt: skip
        state.put_ue(txn, ue, inst.courseid)
        roleid = int(spec.get("roleid", inst.roleid or 0))
        if roleid:
            component, itemid = (
                ("", 0) if inst.enrol == "manual" else (f"enrol_{inst.enrol}", inst.id)
            )
            state.role_assign(txn, inst.courseid, userid, (roleid, component, itemid))


def _load_rows(state: State, data: Mapping[str, Any]) -> None:
    txn = Txn()
    for row in data.get("user_enrolments", []):
        ue = UserEnrolment(**row)
        state.put_ue(txn, ue, state.instances[ue.instanceid].courseid)
    for row in data.get("role_assignments", []):
        ra = (int(row["roleid"]), row.get("component", ""), int(row.get("itemid", 0)))
        state.role_assign(txn, int(row["courseid"]), int(row["userid"]), ra)
    for row in data.get("group_members", []):
        members = state.group_members.setdefault(int(row["groupid"]), {})
        members[int(row["userid"])] = (row.get("component", ""), int(row.get("itemid", 0)))
    for row in data.get("grades", []):
        state.grades[(int(row["courseid"]), int(row["userid"]))] = float(row["grade"])
    for row in data.get("grade_history", []):
        state.grade_history[(int(row["courseid"]), int(row["userid"]))] = float(row["grade"])
    state.counters.update(data.get("counters", {}))
    for row in data.get("welcome_messages", []):
        state.welcome_messages[(int(row["instanceid"]), int(row["userid"]))] = int(row["count"])


def _user_ref(state: State, ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    found = state.find_user("username", ref)
    if not found:
        raise ValueError(f"seed references unknown user {ref!r}")
    return found[0].id


_DEFAULT_ROLES: Final = [
    {"id": 1, "shortname": "manager", "name": "Manager", "sortorder": 1},
    {"id": 3, "shortname": "editingteacher", "name": "Teacher", "sortorder": 3},
    {"id": 4, "shortname": "teacher", "name": "Non-editing teacher", "sortorder": 4},
    {"id": 5, "shortname": "student", "name": "Student", "sortorder": 5},
]


# ------------------------------------------------------------------------------------------------
# SQLite persistence (a snapshot row, rewritten when the state changed)


class SqliteStore:
    """Keeps the latest snapshot of a :class:`State` in one SQLite row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS snapshot "
                "(id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL, body TEXT)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path)
        try:
            with db:
                yield db
        finally:
            db.close()

    def load(self) -> dict[str, Any] | None:
        with self._connect() as db:
            row = db.execute("SELECT body FROM snapshot WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save(self, state: State) -> None:
        body = json.dumps(state.snapshot())
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO snapshot (id, saved_at, body) VALUES (1, ?, ?)",
                (time.time(), body),
            )
        state.dirty = False
