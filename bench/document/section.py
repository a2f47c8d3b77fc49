"""A section of the report as data, whatever writes it: a title, the anchor links use, Markdown
prose, tables of cells and figures. bench/document/as_markdown.py writes one as Markdown (the
README), bench/document/html.py as HTML (report.html); the sections themselves
(bench/document/sections/) never format a whole table, only its cells.

Long prose lives in Markdown templates (bench/document/prose/<name>.md), filled with
str.format fields: `template("latency", "floor", batch_us=12)`. A template may hold several
parts, each after a line `<!-- part: NAME -->`; the text before the first such line is the
part "intro". Lines are joined into paragraphs where they were wrapped.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

PROSE = Path(__file__).parent / "prose"
PART = re.compile(r"^<!-- part: ([a-z_]+) -->$", re.M)


@dataclass(frozen=True)
class Cell:
    """A cell that summarises raw values: its text, and the raw values (the repeats) shown when
    the pointer rests on it in report.html."""

    text: str
    raw: str | None = None

    def __str__(self) -> str:
        return self.text


Value = Cell | str | int | float | None


@dataclass(frozen=True)
class Image:
    """A PNG drawn beside the report, with what it shows (the README names it, report.html
    inlines it)."""

    path: Path
    title: str


@dataclass
class Table:
    """Headers and rows of cells (text or numbers, or a Cell with its raw values), a sub-heading
    (`title`), Markdown before it (`prose`) and after it (`notes`). filters: the columns
    report.html offers as filter lists; raw: hover text per cell (the rows' shape, None where a
    cell has none), for tables built with the raw values apart; caption: one line above it."""

    headers: list[str]
    rows: list[list[Value]]
    filters: list[str] = field(default_factory=list)
    raw: list[list[str | None]] | None = None
    caption: str = ""
    title: str = ""
    prose: str = ""
    notes: str = ""

    def texts(self) -> list[list[str]]:
        """Every cell as text, as the README shows it ('-' is written by the section itself)."""
        return [[_text(value) for value in row] for row in self.rows]

    def hovers(self) -> list[list[str | None]]:
        """Every cell's hover text: a Cell's raw values, else the table's `raw`."""
        given = self.raw or [[None] * len(row) for row in self.rows]
        return [[value.raw if isinstance(value, Cell) and value.raw else extra for value, extra in zip(row, titles)]
                for row, titles in zip(self.rows, given)]


def _text(value: Value) -> str:
    return "" if value is None else str(value)


@dataclass
class Section:
    """One section: its title, its anchor (the id report.html gives it, the README links to),
    prose, tables, figures (Images, or plotly figures, which only report.html shows) and
    notes after them."""

    title: str
    anchor: str
    prose: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list = field(default_factory=list)
    notes: str = ""


@functools.cache
def _parts(name: str) -> dict[str, str]:
    text = (PROSE / f"{name}.md").read_text()
    pieces = PART.split(text)
    parts = {"intro": pieces[0]} | dict(zip(pieces[1::2], pieces[2::2]))
    return {part: _paragraphs(body) for part, body in parts.items()}


def _paragraphs(text: str) -> str:
    """Wrapped lines joined into one line a paragraph; list items and blank lines kept."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if all(line.startswith(("- ", "  ")) for line in lines) and lines[0].startswith("- "):
            items = re.split(r"\n(?=- )", block)
            paragraphs.append("\n".join(" ".join(item.split()) for item in items))
        else:
            paragraphs.append(" ".join(block.split()))
    return "\n\n".join(paragraphs)


def template(name: str, part: str = "intro", **fields) -> str:
    """Part of a prose template, its {fields} filled."""
    return _parts(name)[part].format(**fields)


def from_markdown(lines: list[str]) -> tuple[str, list[Table], str]:
    """(prose before the first table, the tables, prose after the last) of Markdown written by
    code outside this package (bench/kernels), so that its pipe tables sort in report.html like
    every other. Prose between two tables becomes the second one's."""
    prose: list[str] = []
    tables: list[Table] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|") and index + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[index + 1]):
            rows = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(_pipe_cells(lines[index]))
                index += 1
            tables.append(Table(_pipe_cells(line), rows, prose="\n".join(prose).strip()))
            prose = []
            continue
        prose.append(line)
        index += 1
    rest = "\n".join(prose).strip()
    if not tables:
        return rest, [], ""
    first = tables[0].prose
    tables[0].prose = ""
    return first, tables, rest


def _pipe_cells(line: str) -> list[str]:
    """A pipe-table line's cells ('\\|' is a pipe inside a cell)."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
