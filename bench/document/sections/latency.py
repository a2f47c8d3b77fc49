"""Observation latency: from the opponent's own stamp before its write() to Python, every row
that received moves; and the floor, a pipe read with no interception at all."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.cells import raw_list, us
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template

TITLE, ANCHOR = "Observation latency", "observation-latency"
PERCENTILES = ("latency_p50_ns", "latency_p90_ns", "latency_p99_ns", "latency_p999_ns", "latency_max_ns")
HEADERS = ["method", "group", "target", "G", "placement", "moves×runs", "rate", "latency from", "p50 µs", "p90 µs",
           "p99 µs", "p99.9 µs", "max µs", "mechanism→Python p50 µs", "p99 µs"]


@dataclass
class LatencyFloor(Entry):
    SECTION = "latency_floor"
    workload: str  # the opponent's workload, as a label
    placement: str
    rate: float  # moves/s
    moves: int
    stamped: int  # stamped moves measured (the first run's)
    latency_p50_ns: int  # the first run's, ns
    latency_p90_ns: int
    latency_p99_ns: int
    latency_p999_ns: int
    latency_max_ns: int
    repeats: int | None = None  # runs (absent: one, older results)
    latency_p99_per_repeat_ns: list | None = None  # each run's p99, ns (absent: one run)


def floor_table(floors: list[LatencyFloor]) -> Table:
    rows = []
    for f in floors:
        each = f.latency_p99_per_repeat_ns
        rows.append([f.placement, f"{f.rate:g}/s", str(f.stamped), str(f.repeats or 1),
                     us(f.latency_p50_ns), us(f.latency_p90_ns), Cell(us(f.latency_p99_ns), raw_list(each, "ns")),
                     "-" if not each else f"{us(min(each))}–{us(max(each))}", us(f.latency_p999_ns),
                     us(f.latency_max_ns)])
    return Table(["pipe reader, placement", "rate", "stamped moves (first run)", "runs", "p50 µs", "p90 µs",
                  "p99 µs", "p99 of each run, µs", "p99.9 µs", "max µs"], rows, prose=template("latency", "floor"))


def section(document: Document) -> Section | None:
    rows = [r for r in document.runs if not document.is_baseline(r) and r.latency_p50_ns is not None]
    if not rows:
        return None
    batch_us = max(r.batch_ns_max or 0 for r in rows)
    cells = [[document.label(r), r.group, r.target, str(r.goroutines), r.placement, f"{r.moves}×{r.repeats}",
              f"{r.rate:g}/s" if r.paced else "flat out", r.latency_from,
              *(Cell(us(getattr(r, k)), raw_list(r.latency_p99_per_repeat_ns, "ns (p99 of each repeat)"))
                if k == "latency_p99_ns" else us(getattr(r, k)) for k in PERCENTILES),
              us(r.mechanism_latency_p50_ns), us(r.mechanism_latency_p99_ns)] for r in rows]
    tables = [Table(HEADERS, cells, filters=["method", "group", "target", "placement", "rate"])]
    floors = LatencyFloor.of(document)
    if floors:
        tables.append(floor_table(floors))
    return Section(TITLE, ANCHOR, template("latency", batch_us=f"{batch_us / 1000:.0f}"), tables)
