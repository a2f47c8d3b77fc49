"""Bystander cost: what an unwatched process pays while a method watches another."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.cells import raw_list
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template
from bench.document.verdicts import bystander_interval
from bench.stats import per_repeat_ratios

TITLE, ANCHOR = "Bystander cost", "bystander-cost"
CONTROL = "paced opponent unobserved"  # what the bystander's 'alone' runs had beside them


@dataclass
class Bystander(Entry):
    SECTION = "bystanders"
    method: str
    options: dict
    moves: int  # the bystander's writes a run
    repeats: int
    bystander_ns_per_write_alone: float  # median, ns, with the paced opponent unobserved beside it
    bystander_ns_per_write_watching: float  # median, ns, while the method watches the paced opponent
    bystander_ratio: float  # median of watching / alone
    bystander_extra_ns: float | None = None  # median of the paired (watching − alone) differences, ns
    samples_alone: list | None = None  # ns per write, each repeat (absent from the oldest results)
    samples_watching: list | None = None  # ns per write, each repeat, paired with samples_alone
    control: str | None = None  # what ran beside the bystander alone (absent: nothing, older results)
    bystander: str | None = None  # what the bystander is (absent: a copy of the opponent)
    bystander_target: str | None = None  # the bystander's build (absent: go)

    def kind(self) -> str:
        return self.bystander or "a copy of the opponent"

    def evidence(self) -> dict:
        """The samples as bench/document/verdicts.py judges them."""
        return {"samples_alone": self.samples_alone, "samples_watching": self.samples_watching}


def bystander_cell(entry: Bystander) -> Cell:
    """'1.14× [1.11, 1.17]': watching over alone, the median of the per-repeat ratios, with the
    bootstrap 95 % interval of that median (results without samples: the median alone)."""
    if not entry.samples_alone:
        return Cell(f"{entry.bystander_ratio:.2f}×")
    median, low, high = bystander_interval(entry.evidence())
    ratios = per_repeat_ratios(entry.samples_watching, entry.samples_alone)
    return Cell(f"{1 + median:.2f}× [{1 + low:.2f}, {1 + high:.2f}]", raw_list([round(1 + r, 3) for r in ratios], "×"))


def section(document: Document) -> Section | None:
    bystanders = Bystander.of(document)
    if not bystanders:
        return None
    rows = [[document.label(b) + ("" if b.control == CONTROL else " (control without the paced opponent)"),
             f"{b.kind()} (`{b.bystander_target or 'go'}`)",
             Cell(f"{b.bystander_ns_per_write_alone / 1000:.2f}", raw_list(b.samples_alone, "ns")),
             Cell(f"{b.bystander_ns_per_write_watching / 1000:.2f}", raw_list(b.samples_watching, "ns")),
             bystander_cell(b), str(b.repeats)] for b in bystanders]
    return Section(TITLE, ANCHOR, template("bystanders"),
                   [Table(["method watching someone else", "bystander", "bystander µs/write alone",
                           "while watching", "ratio [95 % CI]", "repeats"], rows)])
