"""Local real services for development, tests and the demo, run as plain processes.

No container engine is needed: Apache Kafka (KRaft) and Kafka Connect run from jars
resolved with Maven (``connectors/maven``), the Debezium connectors are Connect plugins
from the same resolution, PostgreSQL and Prometheus come from Debian packages.
Everything lives under one state directory (default ``.state/`` in the repository).
"""

from streams.devstack.config import StackConfig
from streams.devstack.errors import StackError
from streams.devstack.stack import Stack

__all__ = ["Stack", "StackConfig", "StackError"]
