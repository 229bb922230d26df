"""What every emulated web-service function shares: the call context and Moodle's common checks.

A function gets a :class:`Ctx` (state, token, its user, the call's transaction) and the
validated parameters, and returns the value its ``*_returns()`` describes or raises
:class:`~streams.emulator.external.WsError` (or :class:`~streams.emulator.external.PhpFatal`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from streams.emulator.external import (
    Desc,
    PhpFatal,
    Single,
    WsError,
    moodle_exception,
    require_login,
    required_capability,
)
from streams.emulator.state import Course, State, Token, Txn, User

SYSTEM_CONTEXT: Final = 1


@dataclass
class Ctx:
    state: State
    token: Token
    user: User
    txn: Txn = field(default_factory=Txn)
    touched_courses: set[int] = field(default_factory=set)
    rows_changed: int = 0
    """Items of this call that changed something (the cost model's "new" rows)."""
    rows_unchanged: int = 0
    """Items that found Moodle already as sent (cheaper: reads, no writes, no events)."""

    @property
    def site_at_least(self) -> Callable[[str], bool]:
        return self.state.site.at_least

    def can(self, capability: str) -> bool:
        return self.user.can(capability)

    def require(self, capability: str) -> None:
        if not self.can(capability):
            raise required_capability(capability)

    def count_row(self, before: int) -> None:
        """Classify one item by whether the transaction journal grew since ``before``."""
        if self.txn.size > before:
            self.rows_changed += 1
        else:
            self.rows_unchanged += 1


@dataclass(frozen=True)
class Function:
    name: str
    params: Single
    impl: Callable[[Ctx, dict[str, Any]], Any]
    returns: Desc | None = None
    component: str = "moodle"

    @property
    def returns_null(self) -> bool:
        return self.returns is None


def validate_course_context(ctx: Ctx, course: Course) -> None:
    """validate_context() → require_login(): the WS user must be able to enter the course."""
    state = ctx.state
    can_enter = ctx.can("moodle/course:view") or state.is_active(
        course.id, ctx.user.id, state.now()
    )
    if not can_enter:
        raise require_login("Not enrolled")
    if not course.visible and not ctx.can("moodle/course:viewhiddencourses"):
        raise require_login("Course is hidden")


def wsnoinstance(ctx: Ctx, courseid: int) -> Exception:
    """No usable manual instance. Moodle ≤4.4 passed the parameters as the exception's *link*:
    on PHP 7 the message keeps ``{$a->courseid}``; on PHP 8 building the exception dies in a
    TypeError (stripos() given an object): HTTP 500, empty body (moodle-ws.md §11)."""
    site = ctx.state.site
    if not site.at_least("4.5"):
        if site.php8:
            return PhpFatal("TypeError: stripos(): Argument #1 ($haystack) must be of type string")
        shown = "{$a->courseid}"
    else:
        shown = str(courseid)
    return moodle_exception(
        "wsnoinstance",
        "Manual enrolment plugin instance doesn't exist or is disabled for the course "
        f"(id = {shown})",
    )


def require_active_user(user: User) -> None:
    if user.deleted:
        raise moodle_exception("userdeleted", "User account has been deleted")
    if not user.confirmed:
        raise moodle_exception("usernotconfirmed", f"Could not confirm {user.username}")
    if user.username == "guest":
        raise moodle_exception("guestsarenotallowed", "The guest user is not allowed to do this")


def assignable_roles(ctx: Ctx) -> set[int]:
    """get_assignable_roles(): none without moodle/role:assign; admins get every role."""
    if not ctx.can("moodle/role:assign"):
        return set()
    if "*" in ctx.user.capabilities:
        return set(ctx.state.roles)
    return {r for r in ctx.user.assignable_roles if r in ctx.state.roles}


def course_context_error(courseid: int, exc: WsError) -> WsError:
    return moodle_exception(
        "errorcoursecontextnotvalid",
        f"You cannot execute functions in the course context (course id:{courseid}). "
        f"The context error message was: {exc.message}",
    )
