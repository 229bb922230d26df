"""webservice/externallib.php: core_webservice_get_site_info (moodle-ws.md §11)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from streams.emulator.external import DEFAULT, OPTIONAL, Multiple, Single, Value, coding_error
from streams.emulator.functions.base import Ctx, Function
from streams.emulator.state import PLUGIN_VERSIONS, RELEASES

# Filled by the registry: the function table of the site's version (for the ``functions`` list).
Table = Mapping[str, Function]


def site_info(table: Callable[[], Table]) -> Callable[[Ctx, dict[str, Any]], dict[str, Any]]:
    def core_webservice_get_site_info(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
        """The service is found again from ``optional_param('wstoken', PARAM_ALPHANUM)``: a
        token with other characters is stripped, not found, and the call fails (§11)."""
        state, user = ctx.state, ctx.user
        stripped = re.sub(r"[^A-Za-z0-9]", "", ctx.token.token)
        if state.tokens.get(stripped) is not ctx.token:
            raise coding_error("No service found in get_site_info")
        release, version = RELEASES[state.site.version]
        plugin_version = PLUGIN_VERSIONS[state.site.version]
        functions = table()
        allowed = sorted(ctx.token.functions if ctx.token.functions is not None else functions)
        return {
            "sitename": state.site.sitename, "username": user.username,
            "firstname": user.firstname, "lastname": user.lastname,
            "fullname": f"{user.firstname} {user.lastname}", "lang": user.lang,
            "userid": user.id, "siteurl": state.site.siteurl,
            "userpictureurl": f"{state.site.siteurl}/theme/image.php/boost/core/1/u/f1",
            "functions": [
                {"name": f, "version": plugin_version
                 if f in functions and functions[f].component != "moodle" else version}
                for f in allowed
            ],
            "downloadfiles": 0, "uploadfiles": 0, "release": release, "version": version,
            "mobilecssurl": "", "advancedfeatures": [], "usercanmanageownfiles": True,
            "userquota": 0, "usermaxuploadfilesize": -1, "userhomepage": 1,
            "userprivateaccesskey": hashlib.md5(f"key{user.id}".encode()).hexdigest(),
            "siteid": 1, "sitecalendartype": "gregorian", "usercalendartype": "gregorian",
            "userissiteadmin": "*" in user.capabilities, "theme": "boost",
            "limitconcurrentlogins": 0,
        }  # fmt: skip

    return core_webservice_get_site_info


def _opt(type_: str) -> Value:
    return Value(type_, OPTIONAL)


SITE_INFO: Final = Single(
    {
        "sitename": Value("raw"), "username": Value("raw"), "firstname": Value("text"),
        "lastname": Value("text"), "fullname": Value("text"), "lang": Value("lang"),
        "userid": Value("int"), "siteurl": Value("raw"), "userpictureurl": Value("url"),
        "functions": Multiple(Single({"name": Value("raw"), "version": Value("text")})),
        "downloadfiles": _opt("int"), "uploadfiles": _opt("int"), "release": _opt("text"),
        "version": _opt("text"), "mobilecssurl": _opt("url"),
        "advancedfeatures": Multiple(
            Single({"name": Value("alpha"), "value": Value("int")}), OPTIONAL),
        "usercanmanageownfiles": _opt("bool"), "userquota": _opt("int"),
        "usermaxuploadfilesize": _opt("int"), "userhomepage": _opt("int"),
        "userprivateaccesskey": _opt("alphanum"), "siteid": _opt("int"),
        "sitecalendartype": _opt("plugin"), "usercalendartype": _opt("plugin"),
        "userissiteadmin": _opt("bool"), "theme": _opt("theme"),
        "limitconcurrentlogins": _opt("int"), "usersessionscount": _opt("int"),
        "policyagreed": _opt("int"),
    }
)  # fmt: skip


def functions(table: Callable[[], Table]) -> list[Function]:
    return [
        Function(
            "core_webservice_get_site_info",
            Single({"serviceshortnames": Multiple(Value("alphanumext"), DEFAULT, [])}),
            site_info(table),
            SITE_INFO,
        )
    ]
