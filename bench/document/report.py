"""What `tapbench report` writes beside each README, from a results document alone (tables and
plots can be regenerated without re-running anything): the README on one screen, report.html
with every section, headline.json and the plots.

The report is the list of sections below, in order: each is one module of
bench/document/sections/ with its prose in bench/document/prose/. Adding a section is writing
its module (a typed Entry for the JSON it reads, a `section(...)` returning a Section) and its
template, and naming it here.

report.html is committed beside results/README.md and beside each machine's README, so that
the README's links into it work in a fresh clone, in an archive and offline, with nothing to
install or regenerate (a reader who only browses cannot run `tapbench report`). What it costs:
6.5-8.6 MB a page, 2.7 MB compressed; 4.8 MB of it is plotly.js and 1 MB DataTables, the same
bytes in every version, which git's delta compression stores once, so a regeneration adds about
what changed: at most its tables and PNGs, 1 MB compressed (0.8 MB of it the PNGs, unchanged
unless a sweep is). Left uncommitted, every link on the README's first screen would be dead
until the reader installs the project; that is the larger cost. Each table is also in the page
as plain HTML, shown where scripts do not run.
"""
from __future__ import annotations

from pathlib import Path

from bench.document import kernel_matrix, plots, readme as readme_module
from bench.document.as_markdown import section_lines, table_markdown
from bench.document.headline import headline_json, write_headline_json
from bench.document.html import write_html
from bench.document.rows import Document, ResultsError
from bench.document.section import Section
from bench.document.sections import (advice, bpf_time, bystanders, ceiling, claims, decision, dependence, duel,
                                     every_run, first_move, headline, intrusiveness, latency, machines,
                                     not_applicable, placement, power, privileges, programs, provenance, ratios,
                                     skipped,
                                     startup, sweeps, techniques, uprobe)
from bench.document.sections import plots as plots_section

HEADLINE_JSON = "headline.json"
REPORT_HTML = "report.html"
TITLE = "tapbench results"


def sweep_sections(document: Document, drawn: list[Path] | None, headline_data: dict,
                   matrix_lines: list[str] | None = None) -> list[Section]:
    """Every section written from the sweep alone, in the report's order."""
    return [found for found in (
        headline.section(headline_data), every_run.section(document), ratios.section(document),
        bystanders.section(document), placement.section(document), uprobe.section(document),
        duel.section(document), first_move.section(document), bpf_time.section(document),
        latency.section(document), ceiling.section(document), startup.section(document),
        dependence.section(document, matrix_lines), intrusiveness.section(document), privileges.section(document),
        plots_section.section(drawn),
        not_applicable.section(document), skipped.section(document),
    ) if found is not None]


def stored_sections(document: Document, others: dict[str, Document], machine_sweeps: dict[str, Document] | None,
                    power_data: dict | None, measured_programs: dict[str, dict] | None) -> list[Section]:
    """The sections written from what is stored beside the sweep: the sweeps before it, the
    other machines, the gate's power, programs measured with `run -- CMD`, and provenance."""
    previous = others.get("previous.json")
    return [found for found in (
        sweeps.section(document, previous, others.get("baseline.json")),
        machines.section(machine_sweeps or {}, document.metadata.get("machine_id")),
        power.section(power_data), programs.section(measured_programs),
        provenance.section(document, previous, machine_sweeps, power_data, measured_programs),
    ) if found is not None]


def markdown(document: Document, drawn: list[str] | None = None, headline_data: dict | None = None) -> str:
    """Every section the sweep alone gives, in Markdown (what report.html shows, without its
    interactive parts): for a reader without a browser. drawn: the image files beside it
    (None: all of PLOTS); headline_data: its headline.json (None: judged on this document)."""
    images = None if drawn is None else [Path(name) for name in drawn]
    found = sweep_sections(document, images, headline_data or headline_json(document))
    return "\n".join(line for s in found for line in section_lines(s)) + "\n"


def runs_table(document: Document, fmt: str = "github", detail: bool = True) -> str:
    """Every run as one table (what `run` and `bench` print)."""
    return table_markdown(every_run.runs(document, detail), fmt)


def duel_table(document: Document, fmt: str = "github") -> str:
    return duel.duel_table(document, fmt)


def beside(json_path: Path) -> dict[str, Document]:
    """The sweeps stored beside this one: the one before (run-to-run spread) and the quick
    baseline (its wall time). A file that is missing or unreadable is simply not reported."""
    found = {}
    for name in ("previous.json", "baseline.json"):
        try:
            found[name] = Document.load(json_path.parent / name)
        except ResultsError:
            pass
    return found


def write_report(json_path: Path, readme: Path, machines: dict[str, Document] | None = None,
                 power: dict | None = None, measured_programs: dict[str, dict] | None = None,
                 kernels: dict | None = None) -> list[Path]:
    """README, report.html, headline.json and plots, side by side, from a results document
    alone (and, when given, the latest sweep of every stored machine, to judge each claim on
    each and for the cross-machine section; kernels: the kernel matrix's verdicts, see
    headline_json; the cross-machine report reads results/kernels.json itself when it is
    stored and no verdicts are given)."""
    document = Document.load(json_path)
    readme.parent.mkdir(parents=True, exist_ok=True)
    drawn = plots.draw(document, readme.parent)
    matrix_path = kernel_matrix.stored_matrix(json_path) if machines else None
    matrix = kernel_matrix.read(matrix_path) if matrix_path else None
    if matrix is not None and kernels is None:
        kernels = kernel_matrix.verdicts(matrix)
    data = headline_json(document, machines, kernels)
    found = sweep_sections(document, drawn, data, kernel_matrix.section_lines(matrix) if matrix else None)
    found += stored_sections(document, beside(json_path), machines, power, measured_programs)
    first = [s for s in (decision.section(document, data), advice.section(document, data)) if s is not None]
    per_technique = techniques.technique_sections(document, data)
    intro = readme_module.intro(document, REPORT_HTML, "")
    page = write_html(readme.parent / REPORT_HTML, TITLE, "\n\n".join(intro[:3]), first + found + per_technique)
    note = (f"{page.stat().st_size / 1e6:.1f} MB, one page that fetches nothing: every table sortable and "
            "filterable, the raw repeats on hover; committed, so these links work in a fresh clone")
    shown = first + [s for s in (claims.section(data, f"{REPORT_HTML}#{headline.ANCHOR}"),) if s is not None]
    readme.write_text(readme_module.readme(TITLE, readme_module.intro(document, REPORT_HTML, note),
                                           shown + [readme_module.contents(found, per_technique, REPORT_HTML)]))
    headline_path = readme.parent / HEADLINE_JSON
    write_headline_json(data, headline_path)
    return [readme, page, headline_path, *drawn]
