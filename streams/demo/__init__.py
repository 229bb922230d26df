"""``reconciler demo``: the whole product on the local stack, with a generated APOGÉE year.

It brings the stack up, starts the Moodle emulator seeded with the year's accounts and
courses, starts a worker, commits the initial load and the term's events to PostgreSQL, shows
the figures live, and ends with whether Moodle matches APOGÉE (see ``streams/demo/runner.py``).
"""
