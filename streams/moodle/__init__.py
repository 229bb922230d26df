"""Moodle web-service adapter: async client with typed errors, limits, retries, batch splitting.

Public surface::

    from streams.moodle import MoodleClient, MoodleSettings, Enrolment, Status

    async with MoodleClient(MoodleSettings.from_env()) as moodle:
        rows = [Enrolment(userid=5, courseid=7, roleid=5)]
        outcomes = await moodle.enrol_manual_enrol_users(rows)

Errors: :mod:`streams.moodle.errors` (hierarchy in its docstring).
"""

from streams.moodle.batching import ItemOutcome, Status, max_rows
from streams.moodle.client import MoodleClient
from streams.moodle.encoding import count_vars, encode_params
from streams.moodle.errors import (
    CallRejected,
    ItemRejected,
    MoodleBug,
    MoodleError,
    NeverRetry,
    Permanent,
    RetryLater,
)
from streams.moodle.models import (
    Cohort,
    CohortMember,
    CohortMemberIds,
    EnrolledUser,
    Enrolment,
    GroupMember,
    MetaLink,
    MoodleCourse,
    MoodleUser,
    NewCohort,
    SiteInfo,
    Unenrolment,
)
from streams.moodle.settings import MoodleSettings

__all__ = [
    "CallRejected",
    "Cohort",
    "CohortMember",
    "CohortMemberIds",
    "EnrolledUser",
    "Enrolment",
    "GroupMember",
    "ItemOutcome",
    "ItemRejected",
    "MetaLink",
    "MoodleBug",
    "MoodleClient",
    "MoodleCourse",
    "MoodleError",
    "MoodleSettings",
    "MoodleUser",
    "NeverRetry",
    "NewCohort",
    "Permanent",
    "RetryLater",
    "SiteInfo",
    "Status",
    "Unenrolment",
    "count_vars",
    "encode_params",
    "max_rows",
]
