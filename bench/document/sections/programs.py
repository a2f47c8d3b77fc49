"""Programs measured with `run -- CMD`: other programs than the opponent, stored by hand in
results/programs/ (bench/document/programs.py reads them), apart from the sweeps."""
from __future__ import annotations

from bench.document import programs
from bench.document.section import Section, Table, template

TITLE, ANCHOR = "Programs measured with `run -- CMD`", "programs-measured-with-run----cmd"


def program_table(name: str, document: dict) -> Table:
    meta = document.get("meta", {})
    described = (f"`{' '.join(document['argv'])}`, descriptor {document['fd']}, {document['repeats']} repeats; machine "
                 f"{meta.get('machine_id', '?')} (kernel {meta.get('kernel', '?')}), commit "
                 f"{str(meta.get('commit', '?'))[:12]}, {meta.get('date', '?')[:10]}.")
    return Table(programs.HEADERS, programs.table_rows(document), title=name, prose=described,
                 notes="\n".join(f"- {line}" for line in programs.notes(document)))


def section(documents: dict[str, dict] | None) -> Section | None:
    """documents: file name -> a stored `run -- CMD` document."""
    if not documents:
        return None
    return Section(TITLE, ANCHOR, template("programs"),
                   [program_table(name, document) for name, document in sorted(documents.items())])
