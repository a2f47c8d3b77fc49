"""Same-run ratios: one method's overhead over another's, repeat by repeat, in one group."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.cells import raw_list
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template

TITLE, ANCHOR = "Same-run ratios", "same-run-ratios"


@dataclass
class Comparison(Entry):
    SECTION = "comparisons"
    method: str  # the label of the method's variant (options included)
    baseline: str  # the label of the method it is divided by
    ratio: float  # median of the per-repeat ratios of the two overheads per move
    samples: list  # the per-repeat ratios
    workload: str  # the group's workload, as a label
    group: str | None = None  # the sweep group both ran in (absent from older results)
    ci: list | None = None  # [low, high], bootstrap 95 % interval of the ratio (absent from older results)


def section(document: Document) -> Section | None:
    comparisons = Comparison.of(document)
    if not comparisons:
        return None
    rows = [[c.method, c.baseline, c.group or "", c.workload, Cell(f"{c.ratio:.2f}", raw_list(c.samples, "×")),
             "-" if c.ci is None else f"[{c.ci[0]:.2f}, {c.ci[1]:.2f}]", str(len(c.samples))] for c in comparisons]
    return Section(TITLE, ANCHOR, template("ratios"),
                   [Table(["method", "over", "group", "workload", "ratio", "95 % CI", "repeats"], rows,
                          filters=["method", "over", "group"])])
