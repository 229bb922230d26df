"""user_get_user_details() (user/lib.php, 4.4): which fields a caller sees depends on its
capabilities; the function's returns description then keeps the keys it declares."""

from __future__ import annotations

from typing import Any, Final

from streams.emulator.external import moodle_exception
from streams.emulator.functions.base import Ctx
from streams.emulator.state import Course, User

ENROLLED_USER_FIELDS: Final = (
    "id", "username", "firstname", "lastname", "initials", "fullname", "email", "address",
    "phone1", "phone2", "department", "institution", "idnumber", "interests", "firstaccess",
    "lastaccess", "lastcourseaccess", "description", "descriptionformat", "city", "country",
    "profileimageurlsmall", "profileimageurl", "customfields", "groups", "roles", "preferences",
    "enrolledcourses",
)  # fmt: skip


def identity_fields(ctx: Ctx) -> set[str]:
    """\\core_user\\fields::get_identity_fields(): nothing without moodle/site:viewuseridentity."""
    if not ctx.can("moodle/site:viewuseridentity"):
        return set()
    return set(ctx.state.site.showuseridentity)


def user_details(
    ctx: Ctx, user: User, course: Course | None, fields: list[str] | None = None
) -> dict[str, Any]:
    """Every field the caller may see (the returns description drops what a function lacks)."""
    state = ctx.state
    if fields is not None:
        for f in fields:
            if f not in ENROLLED_USER_FIELDS:
                raise moodle_exception("invaliduserfield", f"The user field '{f}' is invalid")
    wanted = set(ENROLLED_USER_FIELDS if fields is None else [*fields, "id", "fullname"])
    identity = identity_fields(ctx)
    alldetails = ctx.can("moodle/user:viewalldetails")
    details: dict[str, Any] = {"id": user.id}
    if alldetails:
        details["username"] = user.username
    fullnames = ctx.can("moodle/site:viewfullnames")
    if fullnames:
        details["firstname"] = user.firstname
        details["lastname"] = user.lastname
    details["fullname"] = f"{user.firstname} {user.lastname}"
    if user.email and ctx.can("moodle/site:viewuseridentity"):
        details["email"] = user.email
    details["department"] = user.department
    if user.institution:
        details["institution"] = user.institution
    if user.idnumber and ("idnumber" in identity or alldetails):
        details["idnumber"] = user.idnumber
    details["firstaccess"] = user.firstaccess
    details["lastaccess"] = user.lastaccess
    if course is not None:
        details["lastcourseaccess"] = 0
    if alldetails:
        details.update(
            auth=user.auth, suspended=user.suspended, confirmed=user.confirmed, lang=user.lang,
            theme=user.theme, timezone=user.timezone, mailformat=user.mailformat,
        )  # fmt: skip
    base = state.site.siteurl
    details["profileimageurlsmall"] = f"{base}/theme/image.php/boost/core/1/u/f2"
    details["profileimageurl"] = f"{base}/theme/image.php/boost/core/1/u/f1"
    if course is not None:
        _course_parts(ctx, user, course, details)
    return {k: v for k, v in details.items() if k in wanted or course is None}


def _course_parts(ctx: Ctx, user: User, course: Course, details: dict[str, Any]) -> None:
    """groups only when in one; roles without names ("" and sortorder 0, as get_user_roles
    returns them to a WS caller); enrolledcourses only when non-empty, by course sortorder."""
    state = ctx.state
    groups = state.user_groups(course.id, user.id)
    if groups:
        details["groups"] = [
            {"id": g.id, "name": g.name, "description": g.description,
             "descriptionformat": g.descriptionformat}
            for g in groups
        ]  # fmt: skip
    details["roles"] = [
        {"roleid": r.id, "name": "", "shortname": r.shortname, "sortorder": 0}
        for r in state.user_roles(course.id, user.id)
    ]
    now = state.now()
    courses = sorted(
        (c for c in state.courses.values() if state.is_active(c.id, user.id, now)),
        key=lambda c: c.sortorder,
    )
    if courses:
        details["enrolledcourses"] = [
            {"id": c.id, "fullname": c.fullname, "shortname": c.shortname} for c in courses
        ]
