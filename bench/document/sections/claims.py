"""The article's claims, compactly: each with its verdict and the first clause of why; the
whole why, the figure it was judged on and what would refute it are in report.html."""
from __future__ import annotations

from bench.document.headline import ASPECTS
from bench.document.section import Section, Table

TITLE, ANCHOR = "The article's claims", "the-articles-claims"
WHY_CHARACTERS = 66  # the README's line stays within 160 characters


def first_clause(why: str) -> str:
    clause = why.split("; ")[0]
    return clause if len(clause) <= WHY_CHARACTERS else clause[:WHY_CHARACTERS - 1].rstrip() + "…"


def section(headline: dict, full: str) -> Section | None:
    """full: where the whole of each claim's judgement is (a link)."""
    rows = [[entry["name"], f"{ASPECTS[c['aspect']]}: {c['text']}" + (f" ({c['part']})" if c.get("part") else ""),
             c["verdict"], first_clause(c["why"])]
            for entry in headline["techniques"] for c in entry["claims"]]
    if not rows:
        return None
    return Section(TITLE, ANCHOR, f"Each verdict with the first clause of why; the whole why, the figure each was "
                                  f"judged on and what would have refuted it: [{full.split('#')[0]}]({full}).",
                   [Table(["technique", "claim", "verdict", "why, in short"], rows)])
