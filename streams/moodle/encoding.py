"""REST form encoding of web-service parameters in PHP bracket notation.

``{"enrolments": [{"userid": 5}]}`` becomes ``enrolments[0][userid]=5`` — the form Moodle's own
API documentation generator shows (moodle-ws.md §1). Lists get ``[0]``, ``[1]``…, mappings
``[key]``; booleans become ``1``/``0``; ``None`` values are omitted (optional parameters).
An empty list cannot be expressed: it is omitted, which Moodle reports as a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

Scalar = Union[str, int, float, bool, None]  # noqa: UP007 - runtime alias, recursive below
Param = Union[Scalar, Sequence["Param"], Mapping[str, "Param"]]  # noqa: UP007

__all__ = ["Param", "count_vars", "encode_params"]


def encode_params(params: Mapping[str, Param]) -> list[tuple[str, str]]:
    """Flatten ``params`` into ordered form pairs."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        _flatten(key, value, pairs)
    return pairs


def count_vars(params: Mapping[str, Param]) -> int:
    """How many PHP input variables ``params`` becomes (what ``max_input_vars`` counts)."""
    return len(encode_params(params))


def _flatten(prefix: str, value: Param, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        out.append((prefix, "1" if value else "0"))
    elif isinstance(value, (str, int, float)):
        out.append((prefix, str(value)))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}[{key}]", item, out)
    else:
        for index, item in enumerate(value):
            _flatten(f"{prefix}[{index}]", item, out)
