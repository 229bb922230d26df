"""Export the data contracts as JSON Schemas under ``schemas/json/``; check they are current.

Wired as ``reconciler schemas export`` and ``reconciler schemas check``; a unit test
calls :func:`stale_files` so a model change without a re-export fails the build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import TypeAdapter

from schemas.audit import AuditRecord
from schemas.commands import MoodleCommand
from schemas.control import ControlCommand
from schemas.course_events import CourseEvent, CourseMeta
from schemas.deadletter import DeadLetterRecord
from schemas.debezium import IndContratElpChange, IndividuChange, InsAdmEtpChange
from schemas.enrolment import DesiredEnrolment, LedgerEntry
from schemas.facts import MembershipFact
from schemas.lineage import SourceRef
from schemas.mapping import CourseMappingRule

__all__ = ["CONTRACTS", "JSON_DIR", "command", "render", "stale_files", "write_all"]

JSON_DIR = Path(__file__).parent / "json"

CONTRACTS: dict[str, Any] = {
    "individu_change": IndividuChange,
    "ins_adm_etp_change": InsAdmEtpChange,
    "ind_contrat_elp_change": IndContratElpChange,
    "source_ref": SourceRef,
    "membership_fact": MembershipFact,
    "course_mapping_rule": CourseMappingRule,
    "desired_enrolment": DesiredEnrolment,
    "ledger_entry": LedgerEntry,
    "moodle_command": MoodleCommand,
    "audit_record": AuditRecord,
    "dead_letter_record": DeadLetterRecord,
    "course_event": CourseEvent,
    "course_meta": CourseMeta,
    "control_command": ControlCommand,
}


def render(name: str) -> str:
    """The JSON Schema text of one contract, stable across runs."""
    schema = TypeAdapter(CONTRACTS[name]).json_schema()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Names whose exported file is missing or differs from the models."""
    return [
        name
        for name in CONTRACTS
        if not _path(directory, name).exists()
        or _path(directory, name).read_text(encoding="utf-8") != render(name)
    ]


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    """Write every contract's schema; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [_path(directory, name) for name in CONTRACTS]
    for name, path in zip(CONTRACTS, paths, strict=True):
        path.write_text(render(name), encoding="utf-8")
    return paths


_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=JSON_DIR,
    show_default=True,
    help="Where the JSON Schema files live.",
)


@click.group(name="schemas")
def command() -> None:
    """Data contracts: export JSON Schemas, or check the exported ones are current."""


@command.command()
@_DIR_OPTION
def export(directory: Path) -> None:
    """Write schemas/json/*.json from the pydantic models."""
    for path in write_all(directory):
        click.echo(f"wrote {path}")


@command.command()
@_DIR_OPTION
def check(directory: Path) -> None:
    """Exit 1 if any exported schema is missing or stale."""
    stale = stale_files(directory)
    if stale:
        raise click.ClickException(
            f"stale JSON Schemas: {', '.join(stale)}; run `reconciler schemas export`"
        )
    click.echo(f"{len(CONTRACTS)} JSON Schemas up to date")
