"""Watching from the first move: `watch --name --wait` started before the opponent exists."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Section, Table, template

TITLE, ANCHOR = "Watching from the first move", "watching-from-the-first-move"


@dataclass
class ExecWatch(Entry):
    SECTION = "exec"
    method: str
    options: dict
    written: int | None  # moves the opponent wrote (None: the watch did not run)
    seen: int | None  # moves the watch printed
    missed: int | None  # written − seen
    how: str | None  # how it found the opponent: caught at exec, or polling /proc then attach
    error: str | None  # why the watch did not run
    failed: bool | None = None  # the watch ran but did not end in time (absent: it did, or older results)

    def how_text(self) -> str:
        return self.how or f"{'FAILED' if self.failed else 'cannot'}: {self.error}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def section(document: Document) -> Section | None:
    found = ExecWatch.of(document)
    if not found:
        return None
    rows = [[document.label(e), e.how_text(), _count(e.written), _count(e.seen), _count(e.missed)] for e in found]
    return Section(TITLE, ANCHOR, template("first_move"),
                   [Table(["method", "how it found the opponent", "moves written", "seen", "missed"], rows)])
