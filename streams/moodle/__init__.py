"""Moodle web-service adapter: async client with typed errors, limits, retries, batch splitting.

Public surface::

    from streams.moodle import MoodleClient, MoodleSettings, Enrolment, Status

    async with MoodleClient(MoodleSettings.from_env()) as moodle:
        rows = [Enrolment(userid=5, courseid=7, roleid=5)]
        outcomes = await moodle.enrol_manual_enrol_users(rows)

Errors: :mod:`streams.moodle.errors` (hierarchy in its docstring).
"""

from streams.moodle.batching import ItemOutcome, Status, max_rows
from streams.moodle.client import CALL_OUTCOMES, CallObserver, MoodleClient, call_outcome
from streams.moodle.concurrency import ConcurrencySnapshot
from streams.moodle.encoding import count_vars, encode_params
from streams.moodle.errors import (
    CallRejected,
    ItemRejected,
    MoodleBug,
    MoodleError,
    NeverRetry,
    NoManualInstance,
    Permanent,
    PhpFatalError,
    RetryLater,
)
from streams.moodle.models import (
    Cohort,
    CohortMember,
    CohortMemberIds,
    CohortMembers,
    EnrolledUser,
    Enrolment,
    EnrolmentMethod,
    GroupMember,
    GroupMembers,
    MetaLink,
    MoodleCourse,
    MoodleGroup,
    MoodleUser,
    NewCohort,
    RoleAssignment,
    SiteInfo,
    Unenrolment,
    UserCourse,
)
from streams.moodle.settings import MoodleSettings

__all__ = [
    "CALL_OUTCOMES",
    "CallObserver",
    "CallRejected",
    "Cohort",
    "CohortMember",
    "CohortMemberIds",
    "CohortMembers",
    "ConcurrencySnapshot",
    "EnrolledUser",
    "Enrolment",
    "EnrolmentMethod",
    "GroupMember",
    "GroupMembers",
    "ItemOutcome",
    "ItemRejected",
    "MetaLink",
    "MoodleBug",
    "MoodleClient",
    "MoodleCourse",
    "MoodleError",
    "MoodleGroup",
    "MoodleSettings",
    "MoodleUser",
    "NeverRetry",
    "NewCohort",
    "NoManualInstance",
    "Permanent",
    "PhpFatalError",
    "RetryLater",
    "RoleAssignment",
    "SiteInfo",
    "Status",
    "Unenrolment",
    "UserCourse",
    "call_outcome",
    "count_vars",
    "encode_params",
    "max_rows",
]
