"""PHP's request-variable parsing, as Moodle receives it: bracket arrays and ``max_input_vars``.

PHP builds ``$_GET`` / ``$_POST`` from ``a[0][b]=1`` pairs into nested arrays and stops
reading a source once ``max_input_vars`` is exceeded (a warning, no error). The two parsers
count differently (PHP 8, main/php_variables.c): the query string is counted *before* a
variable is stored, so exactly ``max_input_vars`` survive; a form-encoded POST body is counted
*after* storing, so ``max_input_vars + 1`` survive (moodle-ws.md §11). Moodle then uses
``array_merge($_GET, $_POST)``: POST wins, top level only. Nested PHP arrays are
represented here as insertion-ordered ``dict[str, ...]`` with string keys.
"""

from __future__ import annotations

from typing import Literal, Union
from urllib.parse import unquote_plus

PhpValue = Union[str, "PhpArray"]
PhpArray = dict[str, PhpValue]

__all__ = ["PhpArray", "PhpValue", "Source", "merge_get_post", "parse_query"]


Source = Literal["get", "post"]


def parse_query(raw: str, max_vars: int, source: Source = "get") -> tuple[PhpArray, int, bool]:
    """Parse ``a=1&b[0]=2`` like PHP; return (array, variables kept, truncated?).

    ``source="post"`` keeps one variable more than ``max_vars``, as PHP's POST parser does."""
    result: PhpArray = {}
    if not raw:
        return result, 0, False
    keep = max_vars + 1 if source == "post" else max_vars
    parts = raw.split("&")
    truncated = False
    count = 0
    for part in parts:
        if not part:
            continue
        if count >= keep:
            truncated = True
            break
        count += 1
        name, _, value = part.partition("=")
        _assign(result, unquote_plus(name), unquote_plus(value))
    return result, count, truncated


def merge_get_post(get: PhpArray, post: PhpArray) -> PhpArray:
    """``array_merge($_GET, $_POST)``: top-level keys of POST replace those of GET."""
    merged = dict(get)
    merged.update(post)
    return merged


def _assign(root: PhpArray, key: str, value: str) -> None:
    base, bracket, rest = key.partition("[")
    if not base:
        return  # PHP ignores variables whose name starts with '['
    base = base.replace(".", "_").replace(" ", "_")
    if not bracket:
        root[base] = value
        return
    segments = _segments("[" + rest)
    if segments is None:
        # An unmatched '[' makes PHP keep the raw name with '[' turned into '_'.
        root[base + "_" + rest] = value
        return
    container: PhpArray = root
    name = base
    for segment in segments:
        node = container.get(name)
        if not isinstance(node, dict):
            node = {}
            container[name] = node
        container = node
        name = _next_index(container) if segment == "" else segment
    container[name] = value


def _segments(text: str) -> list[str] | None:
    segments: list[str] = []
    pos = 0
    while pos < len(text) and text[pos] == "[":
        end = text.find("]", pos)
        if end < 0:
            return segments or None
        segments.append(text[pos + 1 : end])
        pos = end + 1
    return segments


def _next_index(container: PhpArray) -> str:
    ints = [int(k) for k in container if k.isdigit()]
    return str(max(ints) + 1 if ints else 0)
