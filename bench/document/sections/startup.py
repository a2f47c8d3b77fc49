"""Start-up: from launch to the mechanism in place, and a new watch process attaching."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.document.cells import raw_list
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template
from bench.document.sections.bpf_time import BpfProfile

TITLE, ANCHOR = "Start-up", "start-up"
HEADERS = ["method", "launch: ready ms", "launch, compiling: ms (starts)", "launch, reusing: ms (starts)",
           "set-up CPU ms", "teardown CPU ms", "attach, new process: watching ms", "attach, new process: first move ms"]


@dataclass
class Attach(Entry):
    SECTION = "attach"
    method: str
    options: dict
    repeats: int
    attach_ms: list  # from each start to watching, ms
    first_move_ms: list  # from each start to the first move printed, ms
    compiled_at_start: list | None = None  # per start: compiled BPF (bcc) or not; None: nothing to compile
    start: str | None = None  # how each start was made (format 6: a new `tapbench watch --pid` each)
    errors: list | None = None  # starts that failed, in words

    def in_new_processes(self) -> bool:
        """Format 6 starts every attach in a new process; older results attached in one."""
        return self.start is not None

    def cold_starts(self) -> tuple[list[float], list[float]]:
        """The first-move times of starts that compiled (or had nothing to reuse) and of those
        that reused compiled bytecode (results before format 6 attached in one process)."""
        if self.in_new_processes():
            return self.first_move_ms, []
        pairs = list(zip(self.first_move_ms, self.compiled_at_start or []))
        return [ms for ms, cold in pairs if cold is not False], [ms for ms, cold in pairs if cold is False]


def _starts_cell(values: list[float]) -> Cell:
    """'-' where the method has no such start, else the median and how many starts."""
    return Cell("-") if not values else Cell(f"{np.median(values):.0f} ({len(values)})", raw_list(values, "ms"))


def _median_ms(values: list[float]) -> str:
    return "-" if not values else f"{np.median(values):.1f}"


def _range_cell(values: list[float]) -> Cell:
    """'180 (160–210)': the median of the starts and their range."""
    if not values:
        return Cell("-")
    return Cell(f"{np.median(values):.0f} ({min(values):.0f}–{max(values):.0f})", raw_list(values, "ms"))


def launches(document: Document) -> dict[str, dict[str, list[float]]]:
    """Per variant label: every row's ready, compiling and reusing starts, set-up and teardown CPU."""
    found: dict[str, dict[str, list[float]]] = {}
    for r in document.runs:
        if document.is_baseline(r) or r.not_applicable:
            continue
        mine = found.setdefault(document.label(r), {k: [] for k in ("ready", "compiled", "reused", "setup", "teardown")})
        mine["ready"].append(r.ready_ms)
        mine["compiled"] += r.ready_ms_compiled
        mine["reused"] += r.ready_ms_reused
        if r.observer_setup_cpu_ms is not None:
            mine["setup"].append(r.observer_setup_cpu_ms)
            mine["teardown"].append(r.observer_teardown_cpu_ms)
    return found


def rows(document: Document) -> list[list]:
    launched = launches(document)
    attaches = {document.label(a): a for a in Attach.of(document)}
    found = []
    for label in sorted(set(launched) | set(attaches)):
        mine, attach = launched.get(label), attaches.get(label)
        cold = attach.cold_starts()[0] if attach else []
        found.append([label, Cell(f"{np.median(mine['ready']):.0f}", raw_list(mine["ready"], "ms")) if mine else "-",
                      _starts_cell(mine["compiled"] if mine else []), _starts_cell(mine["reused"] if mine else []),
                      _median_ms(mine["setup"] if mine else []), _median_ms(mine["teardown"] if mine else []),
                      _range_cell(attach.attach_ms) if attach and attach.in_new_processes() else "-",
                      _range_cell(cold) if attach else "-"])
    return found


def section(document: Document) -> Section:
    loads = [p.empty_program_load_ms for p in BpfProfile.of(document) if p.empty_program_load_ms is not None]
    notes = template("startup", "bcc_floor", load_ms=f"{np.median(loads):.0f}") if loads else ""
    return Section(TITLE, ANCHOR, template("startup"), [Table(HEADERS, rows(document), notes=notes)])
