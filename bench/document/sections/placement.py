"""Placement: each flat-out row measured with the observer on the target's CPU and beside it."""
from __future__ import annotations

from bench.document.cells import paired_text, us
from bench.document.rows import Document, Row
from bench.document.section import Cell, Section, Table, template
from bench.document.sections.every_run import cost_cell

TITLE, ANCHOR = "Placement", "placement"
HEADERS = ["method", "group", "target", "G", "moves", "shared overhead µs/move [95 % CI]",
           "split overhead µs/move [95 % CI]", "shared cost µs/event", "split cost µs/event", "factor",
           "cheaper here", "default"]


def pairs(document: Document) -> list[tuple[Row, Row]]:
    """(shared, split) for every flat-out row of a group measured in both placements."""
    by_row: dict[tuple, dict[str, Row]] = {}
    for r in document.runs:
        if r.paced or document.is_baseline(r) or r.not_applicable:
            continue
        key = (r.group, r.method, tuple(sorted(r.options.items())), r.target, r.goroutines, r.moves)
        by_row.setdefault(key, {})[r.placement] = r
    return [(placed["shared"], placed["split"]) for placed in by_row.values() if {"shared", "split"} <= set(placed)]


def cheaper(shared: Row, split: Row) -> str:
    """Which placement cost less, only where the intervals do not overlap. Cheaper means what
    the machine pays, counted whole, where the rows measured it: a slowdown over the target's
    span leaves out what the observer does after it."""
    by_cost = shared.cpu_cost_ci is not None and split.cpu_cost_ci is not None
    (a_low, a_high), (b_low, b_high) = (shared.cpu_cost_ci, split.cpu_cost_ci) if by_cost else \
        (shared.overhead_interval_ns[1:], split.overhead_interval_ns[1:])
    if a_high < b_low:
        found = "shared"
    elif b_high < a_low:
        found = "split"
    else:
        found = "not told apart"
    return found + ("" if by_cost else " (by slowdown)")


def row_cells(document: Document, shared: Row, split: Row) -> list:
    (_, shared_low, shared_high), (_, split_low, split_high) = shared.overhead_interval_ns, split.overhead_interval_ns
    found = cheaper(shared, split)
    default = document.info(shared.method).get("default_placement", "-")
    verdict = default if found.split(" (")[0] in (default, "not told apart") else \
        f"{default} (**not** the cheaper one here)"
    factor = max(shared.overhead_ns, split.overhead_ns) / max(min(shared.overhead_ns, split.overhead_ns), 1)
    return [document.label(shared), shared.group, shared.target, str(shared.goroutines), str(shared.moves),
            Cell(f"{us(shared.overhead_ns)} [{us(shared_low)}, {us(shared_high)}]", paired_text(shared)),
            Cell(f"{us(split.overhead_ns)} [{us(split_low)}, {us(split_high)}]", paired_text(split)),
            cost_cell(shared), cost_cell(split), f"{factor:.1f}×", found, verdict]


def section(document: Document) -> Section | None:
    rows = [row_cells(document, shared, split) for shared, split in pairs(document)]
    if not rows:
        return None
    return Section(TITLE, ANCHOR, template("placement"),
                   [Table(HEADERS, rows, filters=["method", "group", "target", "cheaper here"])])
