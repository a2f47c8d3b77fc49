"""How a figure is written in a cell, shared by the sections: microseconds, intervals, the
raw repeats a cell summarises (its hover in report.html), and the article's claims beside a
row or an entry."""
from __future__ import annotations

from bench.document.rows import Document, Row


def us(ns: float | None) -> str:
    """Nanoseconds as microseconds with two decimals ('-': not measured)."""
    return "-" if ns is None else f"{ns / 1000:.2f}"


def number_text(value) -> str:
    """'9,640', '0.123', '12.3': a number as a person reads it (never in e-notation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def raw_list(values, unit: str = "") -> str | None:
    """'812, 790, 805 ns': the raw repeats as hover text (None when there are none)."""
    if values is None or len(values) == 0:
        return None
    return ", ".join(number_text(v) for v in values) + (f" {unit}" if unit else "")


def paired_text(row: Row, joiner: str = "\n") -> str | None:
    """The repeats an overhead summarises: each repeat's observed − bare, then both runs."""
    if not row.samples_observed_ns_per_move:
        return None
    paired = [o - b for o, b in zip(row.samples_observed_ns_per_move, row.samples_bare_ns_per_move)]
    return joiner.join([f"paired observed − bare, per repeat: {raw_list(paired, 'ns')}",
                        f"observed: {raw_list(row.samples_observed_ns_per_move, 'ns')}",
                        f"bare: {raw_list(row.samples_bare_ns_per_move, 'ns')}"])


def claims_of(document: Document, entry, aspect: str) -> list[dict]:
    """The article's claims about this variant of its method (a row's or an entry's), on one
    aspect."""
    options = entry.options or {}
    return [c for c in document.info(entry.method).get("claims", [])
            if c["aspect"] == aspect and all(options.get(k) == v for k, v in c["when"].items())]


def claim_text(document: Document, entry, aspect: str) -> str:
    return "; ".join(c["text"] for c in claims_of(document, entry, aspect)) or "-"
