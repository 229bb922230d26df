"""CSV files as the staff write them: a header line, ``,`` or ``;`` (French spreadsheets),
UTF-8 with or without a BOM, blank lines ignored; every problem is an :class:`Invalid` line
with its number (the header is line 1), never an exception, so a file is reported whole."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Invalid", "Row", "Table", "read"]


@dataclass(frozen=True, slots=True)
class Invalid:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    cells: Mapping[str, str]

    def get(self, name: str) -> str:
        return self.cells.get(name, "")


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    invalid: tuple[Invalid, ...]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


def read(text: str, aliases: Mapping[str, str], required: Sequence[str]) -> Table:
    """Rows keyed by canonical column name (``aliases`` maps header spellings to it)."""
    body = text.lstrip("\ufeff")
    if not body.strip():
        return Table((), (), (Invalid(1, "empty file: a header line is needed"),))
    first = body.splitlines()[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(body), delimiter=delimiter)
    header = next(reader)
    names = tuple(aliases.get(h.strip().lower(), h.strip().lower()) for h in header)
    problems = [f"no {name!r} column in the header" for name in required if name not in names]
    unknown = [n for n in names if n not in aliases.values()]
    if unknown:
        known = ", ".join(sorted(set(aliases.values())))
        problems.append(f"unknown column(s) {', '.join(unknown)} (known: {known})")
    if len(set(names)) != len(names):
        problems.append("a column appears twice")
    if problems:
        return Table(names, (), tuple(Invalid(1, p) for p in problems))
    rows: list[Row] = []
    invalid: list[Invalid] = []
    last = reader.line_num
    for record in reader:
        number, last = last + 1, reader.line_num  # a quoted cell may span lines
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(names):
            invalid.append(Invalid(number, f"{len(record)} fields, the header has {len(names)}"))
            continue
        cells = {
            name: (record[i].strip() if i < len(record) else "") for i, name in enumerate(names)
        }
        rows.append(Row(number, cells))
    return Table(names, tuple(rows), tuple(invalid))
