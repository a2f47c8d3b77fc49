"""Not applicable: the rows whose mechanism cannot see the target at all (a finding, not a
failure: LD_PRELOAD on a static binary, a uprobe on libc's write)."""
from __future__ import annotations

from bench.document.rows import Document
from bench.document.section import Section

TITLE, ANCHOR = "Not applicable", "not-applicable"


def section(document: Document) -> Section | None:
    notes = [r for r in document.runs if r.not_applicable]
    if not notes:
        return None
    return Section(TITLE, ANCHOR, "\n".join(f"- {document.label(r)} on `{r.target}` [{r.group}]: {r.not_applicable}"
                                            for r in notes))
