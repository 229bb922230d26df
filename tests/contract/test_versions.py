"""Version switches (checklist 9) not already shown next to their function.

Elsewhere: wsnoinstance placeholder (test_enrol::test_disabled_manual_instance_is_wsnoinstance),
user pre-checks (test_enrol::test_missing_user_depends_on_version,
test_unenrol::test_unenrol_missing_user_depends_on_version), roleid removal
(test_unenrol::test_roleid_on_unenrol_ignored_until_52_then_rejected), the welcome-message hook
(test_enrol::test_welcome_message_hook_fires_on_every_call_from_45), onlysuspended
(test_reads), meta WS (test_cohorts_meta_groups).
"""

from __future__ import annotations

import pytest

from tests.contract.conftest import MISSING, Target

pytestmark = pytest.mark.contract


async def test_exception_class_names_follow_the_version(target: Target) -> None:
    """≥4.5 reports core classes as core\\exception\\…; dml_* and webservice_* keep their names."""
    prefix = "core\\exception\\" if target.at_least("4.5") else ""
    bad_param = await target.call("enrol_manual_enrol_users", {"enrolments": [{"roleid": "x"}]})
    assert bad_param["exception"] == prefix + "invalid_parameter_exception"
    response = await target.raw(
        get={"wstoken": "nope", "wsfunction": "x", "moodlewsrestformat": "json"}
    )
    assert response.json()["exception"] == prefix + "moodle_exception"
    coding = await target.call("core_user_get_users_by_field", {"field": "nope", "values": ["1"]})
    assert coding["exception"] == prefix + "coding_exception"
    missing = await target.call(
        "enrol_manual_unenrol_users", {"enrolments": [{"userid": 1, "courseid": MISSING}]}
    )
    assert missing["exception"] == "dml_missing_record_exception"


async def test_site_info_reports_release_and_version(target: Target) -> None:
    info = await target.call("core_webservice_get_site_info")
    assert info["release"].startswith(target.version)
    assert info["version"][:4].isdigit()
    assert "enrol_manual_enrol_users" in {f["name"] for f in info["functions"]}
