"""Provenance: the commit every section was measured at, and whether the code it measures
(methods/, bpf/, preload/, gotargets/) changed since: figures of older code are stale."""
from __future__ import annotations

from bench.document.compare import staleness
from bench.document.rows import Document
from bench.document.section import Section

TITLE, ANCHOR = "Provenance", "provenance"


def section(document: Document, previous: Document | None, machines: dict[str, Document] | None,
            power: dict | None, measured_programs: dict[str, dict] | None) -> Section:
    measured = [("This sweep (every section above unless named below)", document.metadata.get("commit"))]
    if previous is not None:
        measured.append(("The sweep before it (run-to-run spread)", previous.metadata.get("commit")))
    measured += [(f"Machine `{machine}`'s latest sweep", other.metadata.get("commit"))
                 for machine, other in sorted((machines or {}).items())]
    if power:
        measured.append(("The gate's power", power.get("commit")))
    measured += [(f"Program `{name}` (`run -- CMD`)", program.get("meta", {}).get("commit"))
                 for name, program in sorted((measured_programs or {}).items())]
    return Section(TITLE, ANCHOR, "Which code each section measured, asked of git when this document was written:\n\n"
                   + "\n".join(f"- {staleness(commit, what)}" for what, commit in measured))
