"""Kernel dependence: what the eBPF loaders need where they run, a first start in a new
process, and, where `tapbench kernels` measured one (results/kernels.json), the techniques ×
kernels matrix (bench/kernels/section.py writes that part)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.cells import raw_list
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, from_markdown, template

TITLE, ANCHOR = "Kernel dependence", "kernel-dependence"


@dataclass
class LoaderRun(Entry):
    exact: bool  # captured every move exactly
    error: str | None  # what it said when it did not


@dataclass
class Dependence(Entry):
    SECTION = "dependence"
    NESTED = {"core": LoaderRun, "bcc": LoaderRun}
    measured: bool
    why: str | None = None  # why it was not measured
    hidden: list | None = None  # the folders covered, then what else was made unimportable
    headers_here: bool | None = None  # this machine has kernel headers for bcc
    core: LoaderRun | None = None
    bcc: LoaderRun | None = None

    def text(self) -> str:
        if not self.measured:
            return f"Not measured: {self.why}."
        core = ("captured exactly: it needs this kernel's BTF, no headers and no compiler" if self.core.exact
                else f"did not run: {self.core.error}")
        bcc = "captured exactly (it should not have)" if self.bcc.exact else f"said: {self.bcc.error}"
        return template("dependence", hidden=", ".join(f"`{h}`" for h in self.hidden[:-1]),
                        last_hidden=self.hidden[-1], core=core, bcc=bcc)


@dataclass
class ColdStart(Entry):
    SECTION = "cold_starts"
    method: str
    options: dict
    starts: int
    ready_ms: list  # from launch to the mechanism in place, each start, ms
    median_ms: float | None  # None: no start succeeded
    errors: list  # what the failed starts said


def cold_starts(document: Document, starts: list[ColdStart]) -> Table:
    rows = [[document.label(c), Cell("-" if c.median_ms is None else f"{c.median_ms:.0f}", raw_list(c.ready_ms, "ms")),
             ", ".join(f"{ms:.0f}" for ms in c.ready_ms) or "-", "; ".join(c.errors) or "-"] for c in starts]
    return Table(["method", "ready ms, median", "each start, ms", "errors"], rows,
                 prose=template("dependence", "cold_starts"))


def section(document: Document, matrix_lines: list[str] | None = None) -> Section | None:
    """matrix_lines: the kernel matrix's section as bench/kernels writes it (Markdown lines,
    its own heading first), when results/kernels.json exists."""
    probes, starts = Dependence.of(document), ColdStart.of(document)
    if not probes and not starts and not matrix_lines:
        return None
    found = Section(TITLE, ANCHOR, "\n\n".join(probe.text() for probe in probes))
    if starts:
        found.tables.append(cold_starts(document, starts))
    if matrix_lines:
        heading = 1 if matrix_lines[0].startswith("#") else 0
        prose, tables, notes = from_markdown(matrix_lines[heading:])
        if tables:
            tables[0].prose = "\n\n".join(p for p in (prose, tables[0].prose) if p)
            tables[-1].notes = "\n\n".join(p for p in (tables[-1].notes, notes) if p)
        tables[0].title = "Every technique on every kernel (`tapbench kernels`)" if tables else ""
        found.tables += tables
    return found
