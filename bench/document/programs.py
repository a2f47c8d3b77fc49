"""Tables of `tapbench run -- CMD` documents (bench/run/program.py writes them), from the document
alone: printed by run, and in the report for those stored in results/programs/."""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from bench.document.rows import ResultsError, read_json

PROGRAMS_DIR = "programs"  # results/programs/: `run -- CMD --json` documents kept for the report
FORMAT = "program-1"  # what bench/run/program.py writes


def _interval(values, scale: float = 1.0, unit: str = "", percent: bool = False) -> str:
    if values is None or values[0] != values[0]:  # None, or NaN: nothing to show
        return "n/a"
    middle, low, high = (v * scale for v in values)
    if percent:
        return f"{middle:+.0%} [{low:+.0%}, {high:+.0%}]"
    largest = max(abs(middle), abs(low), abs(high))
    digits = 0 if largest >= 100 else 1 if largest >= 10 else 2
    return f"{middle:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]{unit}"


HEADERS = ["technique", "placement", "captured/referee", "slowdown per event", "CPU cost ns/event*",
           "ns per event", "start-up"]


def table(document: dict, fmt: str = "simple") -> str:
    return tabulate(table_rows(document), headers=HEADERS, tablefmt=fmt, disable_numparse=True)


def table_rows(document: dict) -> list[list[str]]:
    """One line per technique and placement: what it caught against the referee, what CMD
    felt (slowdown per event) and what the machine paid (CPU per event)."""
    lines = []
    for row in document["rows"]:
        if row["exact"] is None and row["not_applicable"]:
            capture = f"n/a: {row['not_applicable']}"
        elif row["captured"] is None:
            capture = "(bare)"
        else:
            capture = (f"{'exact' if row['exact'] else 'NOT EXACT'}: "
                       + ", ".join(sorted({f'{c:,}/{e:,}' for c, e in zip(row['captured'], row['expected'])})))
            lost = [n for n in row["lost_reported"] if n]
            if lost or None in row["lost_reported"]:
                capture += f", lost {'unknown' if None in row['lost_reported'] else f'{max(lost):,}'}"
            unwatched = max(w - e for w, e in zip(row["writes"], row["expected"]))
            if unwatched:
                capture += f" (its children's {unwatched:,} not watched)"
        if row["failures"]:
            capture += f"; FAILED: {'; '.join(sorted(set(row['failures'])))}"
        # A technique that could not see CMD has no cost per event to show: it saw none.
        priced = row["slowdown"] is not None and not row["not_applicable"]
        lines.append([row["label"], row["placement"], capture,
                      _interval(row["slowdown"], percent=True) if priced else "—",
                      _interval(row["cpu_cost_ns_per_event"]) if priced else "—",
                      _interval(row["ns_per_event"]), _interval(row["startup_ms"], unit=" ms")])
    return lines


def notes(document: dict) -> list[str]:
    """What the table needs to be read right."""
    fd = document["fd"]
    said = [f"events: CMD's write() calls to descriptor {fd}, counted by the kernel (the referee) in every run; "
            "a technique that follows children is held to the whole tree's count, any other to the launched "
            "process's. Order and phantom writes have no ground truth for a program like this: not judged.",
            "intervals: 95 % bootstrap intervals of the median over "
            f"{document['repeats']} repeats; slowdown: ns per event against the same repeat's bare run; "
            "start-up: from release to CMD's first write, not counted per event.",
            "* CPU cost: all the CPU of the run (CMD's tree, the observer's, its helpers'), from release to CMD "
            "reaped, less the same repeat's bare run's, per event: what the machine paid, start-up included (a "
            "hook's start-up, the preload ring's mapping for one, is charged to the events)."]
    for placement, cost in document["referee_cost_ns_per_run"].items():
        said.append(f"the referee's own cost ({placement}): {_interval(cost, 1e-6, ' ms')} a run (release to reaped) "
                    "against bare runs without it; every row above, bare included, runs with it")
    if len(document["writes_seen"]) > 1:
        said.append(f"CMD did not write the same number of times in every run ({', '.join(f'{n:,}' for n in document['writes_seen'])}"
                    "): each capture is held to its own run's count")
    untracked = sum(row["untracked_processes"] for row in document["rows"])
    if untracked:
        said.append(f"{untracked} processes of CMD's tree found the referee's map full: their writes were not "
                    "counted, and no capture is called exact")
    return said


def load(path: Path) -> dict:
    """A stored `run -- CMD` document, refused by name if it is not one this code can show."""
    document = read_json(path)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ResultsError(f"{path} is not a run -- CMD document of format {FORMAT}")
    return document
