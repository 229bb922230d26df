"""Operator and auditor tools: control commands, and (later) audit, replay, diff, bulk sources."""
