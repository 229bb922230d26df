"""Metric names read by a PromQL expression (no Prometheus needed), for consistency checks.

::

    >>> sorted(metric_names('sum by (le) (rate(x_bucket{a="b"}[5m])) / on () y > 0'))
    ['x_bucket', 'y']

Strings, label matchers, ranges, durations, numbers, function names, keywords and the label
lists of ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` are skipped;
what is left is a selector's metric name.
"""

from __future__ import annotations

import re

__all__ = ["metric_names"]

_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      |(?P<braces>\{[^}]*\})
      |(?P<range>\[[^\]]*\])
      |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      |(?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?)
      |(?P<open>\()
      |(?P<other>.)""",
    re.X | re.S,
)
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}
# Aggregations may be followed by ``by (…)`` rather than their argument list.
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """Names of the series ``expr`` selects (template variables like ``$__rate_interval`` are
    treated as durations)."""
    tokens = [
        (m.lastgroup, m.group())
        for m in _TOKEN.finditer(expr.replace("$__rate_interval", "5m"))
        if m.lastgroup != "other" or not m.group().isspace()
    ]
    names: set[str] = set()
    skip_list = False
    for i, (kind, text) in enumerate(tokens):
        if skip_list:
            if kind == "other" and text == ")":
                skip_list = False
            continue
        if kind != "ident":
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if text in _GROUPING:
            skip_list = following[0] == "open"
            continue
        if following[0] == "open" or text.lower() in _KEYWORDS or text in _AGGREGATIONS:
            continue  # a function call, or a keyword
        names.add(text)
    return names
