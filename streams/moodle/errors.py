"""Typed Moodle web-service errors, keyed on ``errorcode`` (never on the exception class name).

Moodle answers errors at HTTP 200 with ``{exception, errorcode, message[, debuginfo]}`` and
renamed its exception classes in 4.5 (``core\\exception\\…``), so only ``errorcode`` is stable.

Hierarchy::

    MoodleError
    ├── RetryLater                 transient: retry with backoff, the call may succeed later
    │   ├── TransportError         connection refused/reset, DNS, TLS, protocol errors
    │   ├── RequestTimeout         no answer within the configured timeout
    │   ├── ServerError            HTTP 5xx (incl. 503 CLI-maintenance page), Retry-After honoured
    │   │   └── PhpFatalError      HTTP 500 with an empty body: PHP died (e.g. Moodle ≤4.4 on
    │   │                          PHP 8 building ``wsnoinstance``); batched enrol/unenrol calls
    │   │                          split it by course and confirm, see batching.py
    │   ├── RateLimited            HTTP 429 (a proxy's rate limit), Retry-After honoured
    │   ├── SiteMaintenance        errorcode ``sitemaintenance``
    │   └── TransientDatabase      ``dmlwriteexception``, ``dmlreadexception``, ``locktimeout``,
    │                              ``dbconnectionfailed``, ``dmltransactionexception``
    ├── Permanent  (= NeverRetry)  the same call will fail the same way
    │   ├── CallRejected           the call as a whole: fix configuration, do not split
    │   │   ├── InvalidToken       ``invalidtoken``
    │   │   ├── AccessDenied       ``accessexception``, ``wsaccessuser*``
    │   │   └── FunctionUnknown    ``invalidrecord`` on table external_functions
    │   └── ItemRejected           caused by (at least) one item: split the batch to find it
    │       ├── InvalidUser        ``invaliduser``, ``userdeleted``, ``usernotconfirmed``
    │       ├── RoleNotAssignable  ``wsusercannotassign``
    │       ├── NoManualInstance   ``wsnoinstance``, ``wscannotenrol``, ``wscannotunenrol``, or a
    │       │                      confirmed PHP-fatal no-instance (``.courseid``, ``REASON``)
    │       ├── InvalidParameter   ``invalidparameter`` (types; missing course/user on older sites)
    │       ├── NoPermission       ``nopermissions``, ``requireloginerror``,
    │       │                      ``errorcoursecontextnotvalid``
    │       └── RecordNotFound     ``invalidrecord`` (course, cohort, group …)
    └── MoodleBug                  unexpected: ``codingerror``, errors without errorcode,
                                   unparseable bodies. Also split when batched (Moodle ≤5.0
                                   reports a missing user as ``codingerror``); surfaced loudly.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = [
    "AccessDenied",
    "CallRejected",
    "FunctionUnknown",
    "InvalidParameter",
    "InvalidToken",
    "InvalidUser",
    "ItemRejected",
    "MoodleBug",
    "MoodleError",
    "NeverRetry",
    "NoManualInstance",
    "NoPermission",
    "Permanent",
    "PhpFatalError",
    "RateLimited",
    "RecordNotFound",
    "RequestTimeout",
    "RetryLater",
    "RoleNotAssignable",
    "ServerError",
    "SiteMaintenance",
    "TransientDatabase",
    "TransportError",
    "error_from_body",
    "is_item_level",
]


class MoodleError(Exception):
    """Base of every error raised by :mod:`streams.moodle`."""

    def __init__(
        self,
        message: str,
        *,
        errorcode: str | None = None,
        exception: str | None = None,
        debuginfo: str | None = None,
        wsfunction: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errorcode = errorcode
        self.exception = exception
        self.debuginfo = debuginfo
        self.wsfunction = wsfunction

    def __str__(self) -> str:
        code = f"[{self.errorcode}] " if self.errorcode else ""
        where = f"{self.wsfunction}: " if self.wsfunction else ""
        return f"{where}{code}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self!s})"


class RetryLater(MoodleError):
    """Transient: the same call may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TransportError(RetryLater):
    pass


class RequestTimeout(RetryLater):
    """No answer in time. The call may still be running on the site: ``held`` (set by the
    client) completes when its copy can be assumed finished (``timeout_hold_s``)."""

    held: asyncio.Future[None] | None = None


class ServerError(RetryLater):
    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class PhpFatalError(ServerError):
    """HTTP 500 with an empty body: PHP stopped with a fatal error before Moodle could answer,
    and the call was rolled back. Usually the same call fails again the same way."""


class RateLimited(ServerError):
    pass


class SiteMaintenance(RetryLater):
    pass


class TransientDatabase(RetryLater):
    pass


class Permanent(MoodleError):
    """Never retry the same call unchanged."""


NeverRetry = Permanent


class CallRejected(Permanent):
    pass


class InvalidToken(CallRejected):
    pass


class AccessDenied(CallRejected):
    pass


class FunctionUnknown(CallRejected):
    pass


class ItemRejected(Permanent):
    pass


class InvalidUser(ItemRejected):
    pass


class RoleNotAssignable(ItemRejected):
    pass


class NoManualInstance(ItemRejected):
    """The course has no usable (present and enabled) manual enrol instance: park the course."""

    REASON = "no usable manual enrol instance"

    def __init__(self, message: str, *, courseid: int | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.courseid = courseid


class InvalidParameter(ItemRejected):
    pass


class NoPermission(ItemRejected):
    pass


class RecordNotFound(ItemRejected):
    pass


class MoodleBug(MoodleError):
    """Not expected from a healthy site or a correct client."""


_BY_CODE: Final[dict[str, type[MoodleError]]] = {
    "sitemaintenance": SiteMaintenance,
    "dmlwriteexception": TransientDatabase,
    "dmlreadexception": TransientDatabase,
    "dbconnectionfailed": TransientDatabase,
    "dmltransactionexception": TransientDatabase,
    "locktimeout": TransientDatabase,
    "invalidtoken": InvalidToken,
    "accessexception": AccessDenied,
    "wsaccessuserdeleted": AccessDenied,
    "wsaccessusersuspended": AccessDenied,
    "wsaccessusernologin": AccessDenied,
    "wsaccessuserunconfirmed": AccessDenied,
    "wsaccessuserexpired": AccessDenied,
    "restrictedcontextexception": AccessDenied,
    "invaliduser": InvalidUser,
    "userdeleted": InvalidUser,
    "usernotconfirmed": InvalidUser,
    "guestsarenotallowed": InvalidUser,
    "wsusercannotassign": RoleNotAssignable,
    "wsnoinstance": NoManualInstance,
    "wscannotenrol": NoManualInstance,
    "wscannotunenrol": NoManualInstance,
    "manualpluginnotinstalled": NoManualInstance,
    "invalidparameter": InvalidParameter,
    "nopermissions": NoPermission,
    "requireloginerror": NoPermission,
    "errorcoursecontextnotvalid": NoPermission,
    "invalidrecord": RecordNotFound,
    "invalidcourseid": RecordNotFound,
    "codingerror": MoodleBug,
}


def error_from_body(body: dict[str, object], wsfunction: str | None = None) -> MoodleError:
    """Turn Moodle's JSON error object into the matching typed error."""
    errorcode = body.get("errorcode")
    code = errorcode if isinstance(errorcode, str) else None
    message = str(body.get("message", ""))
    debuginfo = body.get("debuginfo")
    cls: type[MoodleError] = _BY_CODE.get(code, MoodleBug) if code else MoodleBug
    if cls is RecordNotFound and "external_functions" in message:
        cls = FunctionUnknown
    return cls(
        message,
        errorcode=code,
        exception=str(body.get("exception", "")) or None,
        debuginfo=debuginfo if isinstance(debuginfo, str) else None,
        wsfunction=wsfunction,
    )


def is_item_level(error: MoodleError) -> bool:
    """Whether splitting a failed batch can isolate the cause (see the hierarchy above)."""
    return isinstance(error, (ItemRejected, MoodleBug))
