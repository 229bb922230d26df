"""``reconciler meta``: course meta links created or removed in bulk, from a CSV file.

A meta link makes Moodle mirror a course's enrolments into another (the *meta* course): the
staff's "liens méta" between an element's course and the programme's. Moodle ≥ 4.0 has web
services for them (``enrol_meta_add_instances`` / ``enrol_meta_delete_instances``,
moodle-ws.md §6), so this command calls them directly — they configure Moodle's own sync,
they enrol nobody themselves (Moodle does, from the linked course's enrolments).

File: a header, then one link per line; ``,`` or ``;`` separated:

* ``meta`` [``metacourse``, ``parent``] — the course that mirrors (idnumber, or shortname
  with ``--by-shortname``);
* ``course`` [``linked``, ``child``] — the course mirrored;
* ``action`` — ``add`` (default) or ``remove``;
* ``creategroup`` — optional, ``1``/``yes``: a group in the meta course for the linked one.

Every line is checked first (fields, duplicates, and that both courses exist in Moodle);
if any is invalid, all are listed with their line numbers and nothing is changed.
``--dry-run`` stops there. Adding a link that exists, or removing one that does not, is
fine (Moodle answers ``status: false``, counted as "already so").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
from pydantic import ValidationError

from streams.moodle import MetaLink, MoodleClient, MoodleError, MoodleSettings
from streams.moodle.batching import Status
from streams.tools import csvfile, ui
from streams.tools.csvfile import Invalid
from streams.tools.ui import Exit

__all__ = ["LinkLine", "command", "parse", "resolve"]

_ALIASES = {
    "meta": "meta",
    "metacourse": "meta",
    "parent": "meta",
    "course": "course",
    "linked": "course",
    "child": "course",
    "action": "action",
    "creategroup": "creategroup",
}
_YES, _NO = (
    frozenset({"1", "yes", "y", "true", "oui"}),
    frozenset({"", "0", "no", "n", "false", "non"}),
)
CHUNK = 100


@dataclass(frozen=True, slots=True)
class LinkLine:
    line: int
    meta: str
    course: str
    add: bool
    creategroup: bool


def parse(text: str) -> tuple[list[LinkLine], list[Invalid]]:
    table = csvfile.read(text, _ALIASES, ("meta", "course"))
    lines: list[LinkLine] = []
    invalid = list(table.invalid)
    seen: dict[tuple[str, str], int] = {}
    for row in table:
        meta, course = row.get("meta"), row.get("course")
        action = row.get("action").lower() or "add"
        group = row.get("creategroup").lower()
        reason = None
        if not meta or not course:
            reason = "a meta course and a linked course are needed"
        elif meta == course:
            reason = "a course cannot be linked to itself"
        elif action not in ("add", "remove"):
            reason = f"action {action!r} is neither add nor remove"
        elif group not in _YES | _NO:
            reason = f"creategroup {group!r} is neither yes nor no"
        elif (meta, course) in seen:
            reason = f"same link as line {seen[(meta, course)]}"
        if reason is not None:
            invalid.append(Invalid(row.line, reason))
            continue
        seen[(meta, course)] = row.line
        lines.append(LinkLine(row.line, meta, course, action == "add", group in _YES))
    return lines, sorted(invalid, key=lambda i: i.line)


async def resolve(
    client: MoodleClient, lines: Sequence[LinkLine], field: str
) -> tuple[dict[str, int], list[Invalid]]:
    """Moodle ids of every course named; a course Moodle does not know makes its lines invalid."""
    ids: dict[str, int] = {}
    for name in sorted({n for x in lines for n in (x.meta, x.course)}):
        found = await client.core_course_get_courses_by_field(field, name)
        if found:
            ids[name] = found[0].id
    invalid = [
        Invalid(x.line, f"no Moodle course with {field} {name}")
        for x in lines
        for name in (x.meta, x.course)
        if name not in ids
    ]
    return ids, invalid


@dataclass(frozen=True)
class Applied:
    line: LinkLine
    outcome: str  # applied | rejected | deferred
    error: str = ""


async def apply(
    client: MoodleClient,
    lines: Sequence[LinkLine],
    ids: dict[str, int],
    advance: ui.Advance | None = None,
) -> list[Applied]:
    results: list[Applied] = []
    for add in (True, False):
        todo = [x for x in lines if x.add is add]
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            links = [MetaLink(ids[x.meta], ids[x.course], x.creategroup) for x in chunk]
            call = client.enrol_meta_add_instances if add else client.enrol_meta_delete_instances
            for line, outcome in zip(chunk, await call(links), strict=True):
                error = "" if outcome.error is None else f"{outcome.error}"
                results.append(Applied(line, _OUTCOME[outcome.status], error))
            if advance is not None:
                advance(len(chunk))
    return sorted(results, key=lambda a: a.line.line)


_OUTCOME = {Status.APPLIED: "applied", Status.REJECTED: "rejected", Status.DEFERRED: "deferred"}


@click.command(
    name="meta",
    epilog=ui.epilog(
        "invalid lines (nothing changed), or links Moodle refused",
        [
            "reconciler meta links-2026.csv --dry-run",
            "reconciler meta links-2026.csv --json",
            "reconciler meta unlink-2025.csv --by-shortname",
        ],
    ),
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by-shortname", is_flag=True, help="Courses are named by shortname, not idnumber.")
@click.option("--dry-run", is_flag=True, help="Check everything; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line of the file.")
def command(path: Path, by_shortname: bool, dry_run: bool, as_json: bool) -> None:
    """Create or remove course meta links listed in a CSV file (meta, course, action,
    creategroup) through Moodle's enrol_meta web services. Every line is checked against
    Moodle first; if any is invalid, all are listed and nothing is changed.
    """
    try:
        settings = MoodleSettings.from_env()
    except ValidationError as exc:
        from streams.pipeline.settings import explain

        ui.fail(Exit.USAGE, explain(exc, "MOODLE_"))
        return
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        ui.fail(Exit.ATTENTION, f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})")
        return
    lines, invalid = parse(text)
    field = "shortname" if by_shortname else "idnumber"

    async def run() -> tuple[list[Invalid], list[Applied]]:
        async with MoodleClient(settings) as client:
            if not lines:
                return invalid, []
            ids, unknown = await resolve(client, lines, field)
            problems = sorted([*invalid, *unknown], key=lambda i: i.line)
            if problems or dry_run:
                return problems, []
            with ui.progress("meta links", len(lines)) as advance:
                return [], await apply(client, lines, ids, advance)

    try:
        problems, applied = asyncio.run(run())
    except MoodleError as exc:
        ui.fail(Exit.MOODLE, str(exc))
        return
    if problems:
        for item in problems:
            if as_json:
                ui.emit_json({"line": item.line, "invalid": item.reason})
            else:
                ui.say(ui.clip(f"{path.name}:{item.line}: {item.reason}"))
        ui.say(f"{len(problems)} invalid line(s): nothing changed", err=True)
        raise SystemExit(int(Exit.ATTENTION))
    adds = sum(1 for x in lines if x.add)
    if dry_run:
        rows = [[x.line, x.meta, x.course, "add" if x.add else "remove"] for x in lines]
        for row in rows:
            if as_json:
                ui.emit_json(dict(zip(("line", "meta", "course", "action"), row, strict=True)))
        if not as_json:
            headers = ("line", "meta course", "linked course", "would")
            for text_line in ui.render_table(headers, rows, right=(0,)):
                ui.say(text_line)
        summary = f"dry run: {adds} link(s) to add, {len(lines) - adds} to remove; nothing changed"
        ui.say(summary, err=as_json)
        return
    _report(path, applied, as_json)


def _report(path: Path, applied: Sequence[Applied], as_json: bool) -> None:
    rows = []
    for a in applied:
        x = a.line
        if as_json:
            ui.emit_json(
                {
                    "line": x.line,
                    "meta": x.meta,
                    "course": x.course,
                    "action": "add" if x.add else "remove",
                    "outcome": a.outcome,
                    "error": a.error or None,
                }
            )
        rows.append([x.line, x.meta, x.course, "add" if x.add else "remove", a.outcome, a.error])
    if not as_json:
        for line in ui.render_table(
            ("line", "meta course", "linked course", "action", "outcome", "error"),
            rows,
            right=(0,),
            squeeze=5,
        ):
            ui.say(line)
    failed = [a for a in applied if a.outcome != "applied"]
    ui.say(
        f"{len(applied) - len(failed)} link change(s) applied, {len(failed)} not ({path.name})",
        err=as_json,
    )
    if failed:
        raise SystemExit(int(Exit.ATTENTION))
