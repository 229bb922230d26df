"""The streaming pipeline: faust app, topics, tables, agents, and the worker entry point.

:mod:`~streams.pipeline.app` wires the agents; :mod:`~streams.pipeline.handlers` holds what they
do with one record; :mod:`~streams.pipeline.state` reads and writes the course-keyed tables;
:mod:`~streams.pipeline.worker` is ``reconciler worker``.
"""
