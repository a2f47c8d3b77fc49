"""Throughput ceiling: the highest paced rate at which every move was still captured, in order."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.cells import claim_text, number_text
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template
from bench.document.verdicts import rate_text

TITLE, ANCHOR = "Throughput ceiling", "throughput-ceiling"
HEADERS = ["method", "target", "placement", "held–failed, each search", "first search: held moves/s",
           "of the target's own rate", "first failure at", "limited by", "what limits it", "target alone, flat out",
           "probes", "claimed"]


@dataclass
class Probe(Entry):
    """One paced rate tried (bench/probes/ceilings.py)."""
    offered: float  # moves/s asked of the target
    held: bool  # every move captured, in order, no phantom, the schedule kept, no backlog
    achieved: float | None = None  # moves/s the target wrote
    captured_rate: float | None = None  # moves/s the observer handed over
    backlog_s: float | None = None  # how long after the target's last write events still came, s
    moves: int | None = None
    captured: int | None = None
    lost: int | None = None
    lost_reported: int | None = None
    phantom: int | None = None
    in_order: bool | None = None
    reasons: list | None = None  # why it failed: loss, disorder, throttled, backlog
    observer_cpu_ns_per_move: float | None = None  # who used the CPU at this rate (absent before format 5)
    target_loop_cpu_ns_per_move: float | None = None


@dataclass
class Search(Entry):
    """One whole search of the ceiling."""
    ceiling: float | None  # moves/s that held last (None: nothing held)
    first_failure: float | None  # moves/s that failed first (None: nothing failed)
    limited_by: str

    def evidence(self) -> dict:
        """As bench/document/verdicts.py brackets searches."""
        return {"ceiling": self.ceiling, "first_failure": self.first_failure, "limited_by": self.limited_by}


@dataclass
class Ceiling(Entry):
    SECTION = "ceilings"
    NESTED = {"probes": Probe, "control_at_first_failure": Probe, "searches": Search}
    method: str
    options: dict
    target: str
    unobserved_max: float  # the target's own flat-out rate, moves/s (median of its flat-out runs)
    ceiling: float | None  # the highest rate that held, moves/s (None: not even the first)
    first_failure: float | None  # the lowest rate that failed, moves/s (None: none failed)
    limited_by: str  # loss, disorder, throttled, backlog, or the target's own rate
    probes: list  # [Probe]: every rate tried
    placement: str | None = None  # shared, split or free (absent: free, older results)
    limit: str | None = None  # what limits it, in words (absent from older results)
    confirmations: int | None = None  # probes in a row a rate must hold (absent: 1)
    control_at_first_failure: Probe | None = None  # the target alone at the first failing rate
    searches: list | None = None  # [Search]: each whole search (absent: one, older results)

    def where(self) -> str:
        return self.placement or "free"

    def all_searches(self) -> list[Search]:
        """Every search (the entry's own, where it records one only)."""
        return self.searches or [Search(self.ceiling, self.first_failure, self.limited_by)]


def held_text(ceiling: float | None) -> str:
    return "below 1,000" if ceiling is None else f"{ceiling:,.0f}"


def row_cells(document: Document, c: Ceiling) -> list:
    searches = c.all_searches()
    tried = "; ".join(f"{number_text(p.offered)}/s {'held' if p.held else 'failed'}" for p in c.probes)
    return [document.label(c), c.target, c.where(),
            "; ".join(f"{rate_text(s.ceiling)}–{rate_text(s.first_failure)}" for s in searches),
            held_text(c.ceiling), f"{c.ceiling / c.unobserved_max:.0%}" if c.ceiling else "-",
            "-" if c.first_failure is None else f"{c.first_failure:,.0f}", c.limited_by,
            c.limit or "not said (older results)", f"{c.unobserved_max:,.0f}", Cell(str(len(c.probes)), tried or None),
            # the article's "on one core" is the shared placement
            claim_text(document, c, "ceiling_per_s") if c.where() == "shared" else "-"]


def section(document: Document) -> Section | None:
    ceilings = Ceiling.of(document)
    if not ceilings:
        return None
    confirmations = max((c.confirmations or 1 for c in ceilings), default=1)
    return Section(TITLE, ANCHOR, template("ceiling", confirmations=confirmations),
                   [Table(HEADERS, [row_cells(document, c) for c in ceilings],
                          filters=["method", "target", "placement", "limited by"])])
