"""Skipped: what could not run on this machine, and why, in one line each."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.as_markdown import table_markdown
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Section, Table

TITLE, ANCHOR = "Skipped", "skipped"


@dataclass
class Skipped(Entry):
    SECTION = "skipped"
    method: str  # a method, or what else was skipped, in brackets: "(BPF program times)"
    reason: str
    options: dict | None = None

    @classmethod
    def of(cls, document: Document) -> list["Skipped"]:
        # The document keeps skipped apart from the probe sections.
        return [cls.from_json(entry, f"skipped, entry {index}") for index, entry in enumerate(document.skipped)]


def skipped(document: Document) -> Table:
    return Table(["method", "skipped: reason"], [[document.label(s), s.reason] for s in Skipped.of(document)])


def skipped_table(document: Document, fmt: str = "github") -> str:
    return table_markdown(skipped(document), fmt)


def section(document: Document) -> Section | None:
    return Section(TITLE, ANCHOR, tables=[skipped(document)]) if document.skipped else None
