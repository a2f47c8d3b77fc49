"""Machines: one column per stored machine, the same-run ratios and the ceilings side by side
(never absolute times: they belong to one machine on one day)."""
from __future__ import annotations

from bench.document.rows import Document
from bench.document.section import Section, Table, template
from bench.document.sections.ceiling import Ceiling, held_text
from bench.document.sections.ratios import Comparison

TITLE, ANCHOR = "Machines", "machines"


def described(machine: str, document: Document, link: str) -> str:
    meta = document.metadata
    converted = f", converted from format {meta['converted_from_format']}" if meta.get("converted_from_format") else ""
    return (f"- `{machine}`: {meta.get('cpu_count')} × {meta.get('cpu_model')}, kernel {meta.get('kernel')}, "
            f"hypervisor {meta.get('hypervisor', 'not recorded')}, lockdown {meta.get('lockdown')}; sweep of "
            f"{meta.get('date')}, commit {str(meta.get('commit'))[:12]}{converted} ([detail]({link}))")


def section(machines: dict[str, Document], current: str | None,
            link: str = "machines/{machine}/README.md") -> Section | None:
    """link: where each machine's own README is, from the page the section is in."""
    if not machines:
        return None
    ids = sorted(machines, key=lambda m: (m != current, m))
    ratios: dict[tuple, dict] = {}
    ceilings: dict[tuple, dict] = {}
    for machine, document in machines.items():
        for c in Comparison.of(document):
            ratios.setdefault((c.method, c.baseline, c.workload), {})[machine] = c.ratio
        for c in Ceiling.of(document):
            ceilings.setdefault((document.label(c), c.target, c.where()), {})[machine] = held_text(c.ceiling)
    found = Section(TITLE, ANCHOR, template("machines") + "\n\n" + "\n".join(
        described(machine, machines[machine], link.format(machine=machine)) for machine in ids))
    if ratios:
        found.tables.append(Table(["method", "over", "workload", *ids],
                                  [[*key, *(f"{row[m]:.2f}" if m in row else "-" for m in ids)]
                                   for key, row in ratios.items()],
                                  filters=["method", "over"], prose=template("machines", "ratios")))
    if ceilings:
        found.tables.append(Table(["method", "target", "placement", *ids],
                                  [[*key, *(row.get(m, "-") for m in ids)] for key, row in ceilings.items()],
                                  filters=["method", "target", "placement"], prose=template("machines", "ceilings")))
    return found
