"""A Section as Markdown: its heading, prose, each table in GitHub's pipe format (tabulate)
under its sub-heading, and its PNG figures as images; plotly figures are report.html's only."""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from bench.document.section import Image, Section, Table


def table_markdown(table: Table, fmt: str = "github") -> str:
    """The table alone, its cells as text (numbers are never re-read as numbers)."""
    return tabulate(table.texts(), headers=table.headers, tablefmt=fmt, disable_numparse=True)


def section_lines(section: Section, level: int = 2) -> list[str]:
    """The section's lines, starting with a blank line (sections are written one after another)."""
    lines = ["", f"{'#' * level} {section.title}", ""]
    if section.prose:
        lines += [section.prose, ""]
    for table in section.tables:
        if table.title:
            lines += [f"{'#' * (level + 1)} {table.title}", ""]
        if table.prose:
            lines += [table.prose, ""]
        lines += [table_markdown(table), ""]
        if table.notes:
            lines += [table.notes, ""]
    images = [f for f in section.figures if isinstance(f, Image)]
    if images:
        lines += [f"![{image.title}]({Path(image.path).name})" for image in images] + [""]
    if section.notes:
        lines += [section.notes, ""]
    return lines[:-1] if lines[-1] == "" else lines


def sections_markdown(sections: list[Section]) -> str:
    return "\n".join(line for section in sections for line in section_lines(section))
