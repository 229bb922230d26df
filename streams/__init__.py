"""APOGÉE → Moodle near-real-time enrolment reconciler.

Layers (enforced by import-linter, see ``pyproject.toml``):

* ``streams.domain`` — pure functional core (fold, mapping, desired state, plan).
* ``streams.moodle`` — Moodle web-service client (adapter).
* ``streams.emulator`` — Moodle web-service emulator for tests and the demo.
* ``streams.devstack`` — local real services (Kafka, Connect+Debezium, PostgreSQL, Prometheus).
* ``streams.cli`` — the ``reconciler`` console script.
"""

__version__ = "0.1.0"
