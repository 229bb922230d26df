"""PHP's request-variable parsing, as Moodle receives it: bracket arrays and ``max_input_vars``.

PHP builds ``$_GET`` / ``$_POST`` from ``a[0][b]=1`` pairs into nested arrays and stops
reading a source after ``max_input_vars`` variables (a warning, no error). Moodle then
uses ``array_merge($_GET, $_POST)``: POST wins, top level only. Nested PHP arrays are
represented here as insertion-ordered ``dict[str, ...]`` with string keys.
"""

from __future__ import annotations

from typing import Union
from urllib.parse import unquote_plus

PhpValue = Union[str, "PhpArray"]
PhpArray = dict[str, PhpValue]

__all__ = ["PhpArray", "PhpValue", "merge_get_post", "parse_query"]


def parse_query(raw: str, max_vars: int) -> tuple[PhpArray, int, bool]:
    """Parse ``a=1&b[0]=2`` like PHP; return (array, variables read, truncated?)."""
    result: PhpArray = {}
    if not raw:
        return result, 0, False
    parts = raw.split("&")
    truncated = False
    count = 0
    for part in parts:
        if not part:
            continue
        if count >= max_vars:
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
