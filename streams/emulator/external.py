"""Moodle's external API core re-created: exceptions as REST renders them, ``validate_parameters``.

Messages and ``debuginfo`` texts follow ``core_external\\external_api::validate_parameters`` and
``validate_param`` (lib/moodlelib.php); see shared/reference/moodle-ws.md §1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Class names that moved to \core\exception\ in Moodle 4.5 (MDL-81919); get_class() then
# reports the namespaced name. dml_* and webservice_access_exception kept their global names.
_MOVED_IN_45: Final = frozenset(
    {
        "moodle_exception",
        "coding_exception",
        "invalid_parameter_exception",
        "required_capability_exception",
        "require_login_exception",
    }
)

REQUIRED: Final = 1
DEFAULT: Final = 0
OPTIONAL: Final = 2

# Display names used by get_capability_string() in the nopermissions message.
CAPABILITY_NAMES: Final[Mapping[str, str]] = {
    "enrol/manual:enrol": "Enrol users",
    "enrol/manual:unenrol": "Unenrol users from the course",
    "moodle/cohort:assign": "Add and remove cohort members",
    "moodle/cohort:manage": "Create, delete and move cohorts",
    "moodle/cohort:view": "View site-wide cohorts",
    "moodle/course:managegroups": "Manage groups",
    "moodle/course:viewparticipants": "View participants",
    "moodle/course:enrolreview": "Review course enrolments",
    "moodle/role:review": "Review permissions for others",
    "moodle/site:accessallgroups": "Access all groups",
}


class WsError(Exception):
    """An exception as Moodle's REST server would serialise it.

    ``kind`` is the ≤4.4 class name; :meth:`class_name` gives what ``get_class()`` returns
    for a given site version.
    """

    def __init__(
        self, kind: str, errorcode: str | None, message: str, debuginfo: str | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.errorcode = errorcode
        self.message = message
        self.debuginfo = debuginfo

    def class_name(self, namespaced_core: bool) -> str:
        if namespaced_core and self.kind in _MOVED_IN_45:
            return "core\\exception\\" + self.kind
        return self.kind

    def as_dict(self, namespaced_core: bool, debug: bool) -> dict[str, str]:
        body = {"exception": self.class_name(namespaced_core)}
        if self.errorcode is not None:
            body["errorcode"] = self.errorcode
        body["message"] = self.message
        if debug and self.debuginfo is not None:
            body["debuginfo"] = self.debuginfo
        return body


def invalid_parameter(debuginfo: str | None = None) -> WsError:
    return WsError(
        "invalid_parameter_exception",
        "invalidparameter",
        "Invalid parameter value detected",
        debuginfo,
    )


def coding_error(hint: str) -> WsError:
    return WsError(
        "coding_exception",
        "codingerror",
        f"Coding error detected, it must be fixed by a programmer: {hint}",
    )


def missing_record(table: str, where: str, *params: object) -> WsError:
    """``dml_missing_record_exception`` for a ``get_record(..., MUST_EXIST)``."""
    errorcode = "invaliduser" if table == "user" else "invalidrecord"
    message = (
        "Invalid user" if table == "user" else f"Can't find data record in database table {table}."
    )
    exported = "".join(f"  {i} => {_php_export(p)},\n" for i, p in enumerate(params))
    debuginfo = f"SELECT * FROM {{{table}}} WHERE {where}\n[array (\n{exported})]"
    return WsError("dml_missing_record_exception", errorcode, message, debuginfo)


def required_capability(capability: str) -> WsError:
    name = CAPABILITY_NAMES.get(capability, capability)
    return WsError(
        "required_capability_exception",
        "nopermissions",
        f"Sorry, but you do not currently have permissions to do that ({name}).",
    )


def require_login(debuginfo: str | None = None) -> WsError:
    return WsError(
        "require_login_exception",
        "requireloginerror",
        "Course or activity not accessible.",
        debuginfo,
    )


def moodle_exception(errorcode: str, message: str, debuginfo: str | None = None) -> WsError:
    return WsError("moodle_exception", errorcode, message, debuginfo)


def _php_export(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


# --------------------------------------------------------------------------------------------
# Parameter descriptions (external_value / external_single_structure / external_multiple_structure)


@dataclass(frozen=True, slots=True)
class Value:
    type: str
    required: int = REQUIRED
    default: Any = None


@dataclass(frozen=True, slots=True)
class Single:
    keys: Mapping[str, Desc]
    required: int = REQUIRED
    default: Any = None


@dataclass(frozen=True, slots=True)
class Multiple:
    content: Desc
    required: int = REQUIRED
    default: Any = field(default=None)


Desc = Value | Single | Multiple

_INT_RE: Final = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_CLEANERS: Final[Mapping[str, re.Pattern[str]]] = {
    "alpha": re.compile(r"[^a-zA-Z]"),
    "alphanumext": re.compile(r"[^a-zA-Z0-9_\-]"),
    "sequence": re.compile(r"[^0-9,]"),
    "theme": re.compile(r"[^a-zA-Z0-9_\-]"),
}
_TAGS_RE: Final = re.compile(r"<[^>]*>")


def validate(desc: Desc, params: Any) -> Any:
    """``external_api::validate_parameters``; raises :func:`invalid_parameter` like Moodle."""
    if isinstance(desc, Value):
        return _validate_value(desc, params)
    if isinstance(desc, Single):
        return _validate_single(desc, params)
    if not isinstance(params, (dict, list)):
        raise invalid_parameter(f"Only arrays accepted. The bad value is: '{_print_r(params)}'")
    items = params.values() if isinstance(params, dict) else params
    return [validate(desc.content, item) for item in items]


def _validate_single(desc: Single, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise invalid_parameter(f"Only arrays accepted. The bad value is: '{_print_r(params)}'")
    result: dict[str, Any] = {}
    remaining = dict(params)
    for key, sub in desc.keys.items():
        if key not in remaining:
            if sub.required == REQUIRED:
                raise invalid_parameter(f"Missing required key in single structure: {key}")
            if sub.required == DEFAULT:
                result[key] = _nested(key, sub, sub.default)
        else:
            result[key] = _nested(key, sub, remaining.pop(key))
    if remaining:
        raise invalid_parameter(
            f"Unexpected keys ({', '.join(remaining)}) detected in parameter array."
        )
    return result


def _nested(key: str, sub: Desc, value: Any) -> Any:
    try:
        return validate(sub, value)
    except WsError as exc:
        if exc.errorcode != "invalidparameter":
            raise
        raise invalid_parameter(f"{key} => {exc.message}: {exc.debuginfo or ''}") from None


def _validate_value(desc: Value, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise invalid_parameter("Scalar type expected, array or object received.")
    if desc.type == "bool" and (isinstance(value, bool) or value in (0, 1) or value in ("0", "1")):
        return bool(int(value))
    if value is None:
        raise invalid_parameter(
            f'Invalid external api parameter: the value is "", the server was expecting '
            f'"{desc.type}" type'
        )
    text = _php_string(value)
    cleaned = clean_param(text, desc.type)
    if _php_string(cleaned) != text:
        raise invalid_parameter(
            f'Invalid external api parameter: the value is "{text}", the server was expecting '
            f'"{desc.type}" type'
        )
    return cleaned


def clean_param(text: str, type_: str) -> Any:
    """A subset of ``clean_param()`` sufficient for the emulated functions."""
    if type_ == "int":
        return int(text) if _INT_RE.match(text) else _php_intval(text)
    if type_ == "bool":
        lowered = text.lower()
        if lowered in ("on", "yes", "true"):
            return 1
        if lowered in ("off", "no", "false"):
            return 0
        return 0 if text in ("", "0") else 1
    if type_ in ("raw", "rawtrimmed"):
        return text.strip() if type_ == "rawtrimmed" else text
    if type_ == "text":
        return _TAGS_RE.sub("", text)
    if type_ == "username":
        return re.sub(r"[^-\.@_a-z0-9]", "", text.strip().lower())
    pattern = _CLEANERS.get(type_)
    return pattern.sub("", text) if pattern is not None else text


def _php_intval(text: str) -> int:
    match = re.match(r"\s*[+-]?\d+", text)
    return int(match.group()) if match else 0


def _php_string(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


def _print_r(value: Any) -> str:
    return _php_string(value) if value is not None else ""


# --------------------------------------------------------------------------------------------
# Return values: clean_returnvalue (JSON) and xmlize_result (XML), both driven by *_returns()


class PhpFatal(Exception):
    """A PHP fatal error (e.g. PHP 8's TypeError): the server answers HTTP 500 with an empty
    body, no Moodle error object, and the transaction is rolled back (moodle-ws.md §11)."""


def invalid_response(debuginfo: str) -> WsError:
    return WsError(
        "invalid_response_exception",
        "invalidresponse",
        "Invalid response value detected",
        debuginfo,
    )


def clean_returnvalue(desc: Desc | None, value: Any) -> Any:
    """``external_api::clean_returnvalue``: keys in description order, unknown keys dropped,
    optional keys omitted when absent, defaults filled in, scalars typed."""
    if desc is None:
        return None
    if isinstance(desc, Value):
        return None if value is None else _typed(desc.type, value)
    if isinstance(desc, Multiple):
        if not isinstance(value, (list, tuple)):
            raise invalid_response("Only arrays accepted.")
        return [clean_returnvalue(desc.content, item) for item in value]
    if not isinstance(value, Mapping):
        raise invalid_response("Only arrays/objects accepted.")
    result: dict[str, Any] = {}
    for key, sub in desc.keys.items():
        if key in value:
            result[key] = clean_returnvalue(sub, value[key])
        elif sub.required == REQUIRED:
            raise invalid_response(
                f"Error in response - Missing following required key in a single structure: {key}"
            )
        elif sub.required == DEFAULT and isinstance(sub, Value):
            result[key] = clean_returnvalue(sub, sub.default)
    return result


def _typed(type_: str, value: Any) -> Any:
    if type_ == "bool":
        return bool(value) if not isinstance(value, str) else value not in ("", "0")
    if type_ == "int":
        return int(value)
    if type_ == "float":
        return float(value)
    if type_ == "raw" and isinstance(value, bool):
        return value  # PARAM_RAW keeps PHP's type (e.g. get_enrol_info's status = true)
    return _php_string(value)


def xmlize_result(desc: Desc | None, value: Any) -> str:
    """``webservice_rest_server::xmlize_result``: every key of the description is written,
    ``<VALUE null="null"/>`` where the value is absent."""
    if desc is None:
        return ""
    if isinstance(desc, Value):
        if value is None:
            return '<VALUE null="null"/>\n'
        text = str(int(value)) if isinstance(value, bool) else _php_string(value)
        return f"<VALUE>{_xml_escape(text)}</VALUE>\n"
    if isinstance(desc, Multiple):
        items = "".join(xmlize_result(desc.content, v) for v in (value or []))
        return f"<MULTIPLE>\n{items}</MULTIPLE>\n"
    row = value if isinstance(value, Mapping) else {}
    keys = "".join(
        f'<KEY name="{k}">{xmlize_result(sub, row.get(k))}</KEY>\n' for k, sub in desc.keys.items()
    )
    return f"<SINGLE>\n{keys}</SINGLE>\n"


def _xml_escape(text: str) -> str:
    """Moodle's ``s()``: htmlspecialchars with quotes."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#039;")
    )
