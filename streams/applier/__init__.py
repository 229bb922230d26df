"""The applier: plans for dirty courses → batched Moodle calls → results, parking, audit.

No faust and no Kafka here: it reads course state and publishes results through the ports of
:mod:`~streams.applier.ports`, which the pipeline implements.
"""

from streams.applier.applier import Applier, ApplierConfig
from streams.applier.gateway import MoodleGateway
from streams.applier.parking import Parking, ParkReason
from streams.applier.ports import CourseState, Everywhere, Outbox
from streams.applier.schedule import Schedule

__all__ = [
    "Applier",
    "ApplierConfig",
    "CourseState",
    "Everywhere",
    "MoodleGateway",
    "Outbox",
    "ParkReason",
    "Parking",
    "Schedule",
]
