"""user/externallib.php: core_user_get_users_by_field (moodle-ws.md §5, §11)."""

from __future__ import annotations

from typing import Any, Final

from streams.emulator.external import (
    OPTIONAL,
    Multiple,
    Single,
    Value,
    clean_param,
    coding_error,
    invalid_parameter,
)
from streams.emulator.functions.base import Ctx, Function
from streams.emulator.lib.userlib import user_details

_FIELD_TYPES: Final = {
    "id": "int",
    "idnumber": "raw",
    "username": "username",
    "email": "rawtrimmed",
}


def core_user_get_users_by_field(ctx: Ctx, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Sorted by id, duplicates removed, unknown values absent, deleted users dropped, and a
    user whose searched field the caller cannot see is dropped too."""
    field_name = params["field"]
    if field_name not in _FIELD_TYPES:
        raise coding_error("invalid field parameter")
    wanted: set[str] = set()
    for value in params["values"]:
        cleaned = clean_param(value, _FIELD_TYPES[field_name])
        if str(cleaned) != value:
            raise invalid_parameter(
                f"The field '{field_name}' value is invalid: {value}(cleaned value: {cleaned})"
            )
        wanted.add(str(cleaned))
    found = sorted(
        (u for u in ctx.state.users.values() if str(getattr(u, field_name)) in wanted),
        key=lambda u: u.id,
    )
    result = []
    for user in found:
        if user.deleted:
            continue
        details = user_details(ctx, user, None)
        if details.get(field_name):  # the searched field must be visible to the caller
            result.append(details)
    return result


def _opt(type_: str) -> Value:
    return Value(type_, OPTIONAL)


USER_DESCRIPTION: Final = Single(
    {
        "id": Value("int"), "username": _opt("raw"), "firstname": _opt("notags"),
        "lastname": _opt("notags"), "fullname": Value("notags"), "email": _opt("text"),
        "address": _opt("text"), "phone1": _opt("notags"), "phone2": _opt("notags"),
        "department": _opt("text"), "institution": _opt("text"), "idnumber": _opt("raw"),
        "interests": _opt("text"), "firstaccess": _opt("int"), "lastaccess": _opt("int"),
        "auth": _opt("plugin"), "suspended": _opt("bool"), "confirmed": _opt("bool"),
        "lang": _opt("safedir"), "calendartype": _opt("plugin"), "theme": _opt("plugin"),
        "timezone": _opt("timezone"), "mailformat": _opt("int"), "trackforums": _opt("int"),
        "description": _opt("raw"), "descriptionformat": _opt("int"), "city": _opt("notags"),
        "country": _opt("alpha"), "profileimageurlsmall": Value("url"),
        "profileimageurl": Value("url"),
        "customfields": Multiple(
            Single({"type": Value("alphanumext"), "value": Value("raw"),
                    "displayvalue": _opt("raw"), "name": Value("raw"),
                    "shortname": Value("raw")}), OPTIONAL),
        "preferences": Multiple(Single({"name": Value("raw"), "value": Value("raw")}), OPTIONAL),
    }
)  # fmt: skip


def functions(at_least: Any) -> list[Function]:
    return [
        Function(
            "core_user_get_users_by_field",
            Single({"field": Value("alpha"), "values": Multiple(Value("raw"))}),
            core_user_get_users_by_field,
            Multiple(USER_DESCRIPTION),
        )
    ]
