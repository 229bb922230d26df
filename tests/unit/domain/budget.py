"""How hard the hypothesis properties try.

The full budget by default. ``./dev mutate`` sets ``DOMAIN_TEST_BUDGET=mutation``: each
mutant reruns the properties that reach it, so they run a tenth of the examples (at least
10), derandomized (the same examples for every mutant, so a survivor is a fact, not luck)
and without the example database.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

MUTATION = os.environ.get("DOMAIN_TEST_BUDGET") == "mutation"


def budget(max_examples: int) -> settings:
    """Settings for a property worth ``max_examples`` examples in a normal run."""
    if MUTATION:
        return settings(
            max_examples=max(10, max_examples // 10),
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
