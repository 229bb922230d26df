"""Encoding, error taxonomy, rate limit, backoff, batching: the client's pure parts."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.emulator.phpform import parse_query
from streams.moodle.batching import Status, apply_bisecting, chunks, max_rows
from streams.moodle.encoding import count_vars, encode_params
from streams.moodle.errors import (
    FunctionUnknown,
    InvalidToken,
    InvalidUser,
    MoodleBug,
    MoodleError,
    NoManualInstance,
    RetryLater,
    RoleNotAssignable,
    SiteMaintenance,
    TransientDatabase,
    error_from_body,
    is_item_level,
)
from streams.moodle.limits import Backoff, TokenBucket


def test_encoding_uses_php_bracket_notation() -> None:
    params = {
        "enrolments": [{"roleid": 5, "userid": 123, "courseid": 789, "suspend": True}],
        "options": [{"name": "onlyactive", "value": "1"}],
        "values": ["abc", "def"],
        "skipped": None,
    }
    assert encode_params(params) == [
        ("enrolments[0][roleid]", "5"),
        ("enrolments[0][userid]", "123"),
        ("enrolments[0][courseid]", "789"),
        ("enrolments[0][suspend]", "1"),
        ("options[0][name]", "onlyactive"),
        ("options[0][value]", "1"),
        ("values[0]", "abc"),
        ("values[1]", "def"),
    ]
    assert count_vars(params) == 8


_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6)
_values = st.text(max_size=8).filter(lambda s: "\x00" not in s)
_tree = st.recursive(
    _values,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(_keys, inner, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


def _php_shape(value: object) -> object:
    """What PHP gives back: lists become string-keyed arrays."""
    if isinstance(value, list):
        return {str(i): _php_shape(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        return {k: _php_shape(v) for k, v in value.items()}
    return value


@given(st.dictionaries(_keys, _tree, min_size=1, max_size=4))
def test_encoding_round_trips_through_php_parsing(params: dict[str, object]) -> None:
    pairs = encode_params(params)  # type: ignore[arg-type]
    parsed, count, truncated = parse_query(urlencode(pairs), max_vars=10_000)
    assert (count, truncated) == (len(pairs), False)
    assert parsed == _php_shape(params)


def _body(
    errorcode: str | None, exception: str = "moodle_exception", message: str = "m"
) -> dict[str, str]:
    body = {"exception": exception, "message": message}
    if errorcode is not None:
        body["errorcode"] = errorcode
    return body


_EXTERNAL_FUNCTIONS = "Can't find data record in database table external_functions."


@pytest.mark.parametrize(
    ("body", "cls"),
    [
        (_body("invalidtoken"), InvalidToken),
        (_body("invalidtoken", "core\\exception\\moodle_exception"), InvalidToken),
        (_body("invaliduser", "dml_missing_record_exception"), InvalidUser),
        (_body("wsusercannotassign"), RoleNotAssignable),
        (_body("wsnoinstance"), NoManualInstance),
        (_body("sitemaintenance"), SiteMaintenance),
        (_body("dmlwriteexception", "dml_write_exception"), TransientDatabase),
        (
            _body("invalidrecord", "dml_missing_record_exception", _EXTERNAL_FUNCTIONS),
            FunctionUnknown,
        ),
        (_body(None, "Error"), MoodleBug),
        (_body("codingerror", "coding_exception"), MoodleBug),
        (_body("brandnewcode", "whatever"), MoodleBug),
    ],
)
def test_errors_are_typed_by_errorcode_not_class(
    body: dict[str, object], cls: type[MoodleError]
) -> None:
    error = error_from_body(body, "f")
    assert type(error) is cls
    assert error.errorcode == body.get("errorcode")


def test_item_level_errors_are_the_ones_worth_splitting() -> None:
    assert is_item_level(InvalidUser("x"))
    assert is_item_level(MoodleBug("x"))
    assert not is_item_level(InvalidToken("x"))
    assert not is_item_level(SiteMaintenance("x"))


def test_max_rows_keeps_rows_times_vars_plus_three_below_the_limit() -> None:
    rows = max_rows(1000, 6, safety=0.9)
    assert rows * 6 + 3 <= 900 < (rows + 1) * 6 + 3
    assert max_rows(1000, 6, cap=100) == 100
    with pytest.raises(ValueError):
        max_rows(8, 6)
    assert [len(c) for c in chunks(list(range(7)), 3)] == [3, 3, 1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(7):
        await bucket.acquire()
    # 3 immediately, then 4 more at 2/s: 2 seconds of fake time.
    assert clock.now == pytest.approx(2.0)
    assert clock.sleeps == pytest.approx([0.5] * 4)


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    backoff = Backoff(base=0.5, factor=2.0, cap=4.0)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.delay(3, rand=lambda: 0.25) == 1.0
    assert backoff.delay(0, rand=lambda: 0.0, retry_after=7.0) == 7.0


async def test_bisecting_isolates_every_bad_item_and_applies_the_rest() -> None:
    bad = {3, 8}
    applied: list[int] = []
    calls: list[Sequence[int]] = []

    async def call(items: Sequence[int]) -> None:
        calls.append(items)
        if bad & set(items):
            raise InvalidUser("Invalid user", errorcode="invaliduser")
        applied.extend(items)

    outcomes = await apply_bisecting(list(range(10)), call)
    assert [o.item for o in outcomes] == list(range(10))
    assert {o.item for o in outcomes if o.status is Status.REJECTED} == bad
    assert sorted(applied) == [i for i in range(10) if i not in bad]
    assert len(calls) <= 2 * 2 * 4 + 1  # O(bad · log n) calls


async def test_bisecting_defers_transient_and_raises_call_level_errors() -> None:
    async def transient(items: Sequence[int]) -> None:
        raise RetryLater("down")

    outcomes = await apply_bisecting([1, 2], transient)
    assert [o.status for o in outcomes] == [Status.DEFERRED, Status.DEFERRED]

    async def token(items: Sequence[int]) -> None:
        raise InvalidToken("Invalid token", errorcode="invalidtoken")

    with pytest.raises(InvalidToken):
        await apply_bisecting([1, 2], token)
