"""The article's table, measured: one row per technique, chosen by the rule fixed in advance
(bench/document/headline.py), and the article's claims judged beside it, all from headline.json."""
from __future__ import annotations

from bench.document import headline_text as text
from bench.document.headline import ASPECTS, COST_INTERVAL, OVERHEAD_INTERVAL, SELECTION
from bench.document.section import Section, Table, template
from bench.document.verdicts import RULES

TITLE, ANCHOR = "The article's table, measured", "the-articles-table-measured"
CLAIMS_TITLE = "The article's claims"


def measured_rows(data: dict) -> list[list[str]]:
    rows = []
    for entry in data["techniques"]:
        if entry["row"] is None:
            rows.append([f"**{entry['article_name'] or entry['name']}**", entry["missing"],
                         *["-"] * (len(text.HEADERS) - 2)])
        else:
            rows.append(text.table_row(entry))
    return rows


def rules_text() -> str:
    return template("headline", selection="; ".join(f"*{what}*: {rule}" for what, rule in SELECTION.items()),
                    rules="; ".join(f"*{ASPECTS.get(aspect, aspect)}*: {rule}" for aspect, rule in RULES.items()),
                    overhead_interval=OVERHEAD_INTERVAL, cost_interval=COST_INTERVAL)


def section(data: dict) -> Section | None:
    if not data["techniques"]:
        return None
    claims = [line for entry in data["techniques"] if entry["row"] is not None for line in text.claim_lines(entry)]
    tables = [Table(text.HEADERS, measured_rows(data), notes=" ".join(text.summary(data)))]
    if claims:
        tables.append(Table(["technique", "claim", "judged on", "measured", "verdict"], claims, title=CLAIMS_TITLE,
                            filters=["technique", "claim"]))
    return Section(TITLE, ANCHOR, tables=tables, notes=rules_text())
