"""What `tapbench report` writes from the stored sweeps, read back as figures: every table of
every README (and of report.html, where the tables are in the page's data) as (heading, row,
column) -> cell, so a renovation of the reading side can be checked to change no figure.

Reads the reports as files, the way a person would, not the code that wrote them."""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

from bench import store
from bench.document import programs as programs_report
from bench.document import report as report_module
from bench.document.rows import Document, read_json

ROOT = Path(__file__).resolve().parents[1]  # not bench.run.targets, which imports methods/

RESULTS = ROOT / "results"


def newest_sweep(results: Path) -> Path:
    """The sweep results/README.md details, chosen as on a machine that stored none: the newest
    (so the check does not depend on the machine it runs on)."""
    return max(results.glob(f"{store.MACHINES}/*/latest.json"), key=lambda p: Document.load(p).metadata["date"])


def regenerate(out: Path, results: Path = RESULTS) -> list[str]:
    """Every report `tapbench report` writes (bench/commands/report.py write_reports), into out
    instead of results/: README.md and each machine's; returns their paths relative to out. The
    stored inputs the snapshot holds for (stored_inputs) are copied first, so that a file stored
    since (results/kernels.json, which changes the kernel verdicts by design) stays out of it."""
    inputs = out / "inputs"
    for name in stored_inputs(results):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(results / name, inputs / name)
    machines = store.latest_sweeps(inputs)
    for machine in machines:
        folder = inputs / store.MACHINES / machine
        report_module.write_report(folder / "latest.json", out / store.MACHINES / machine / "README.md")
    power = inputs / "gate_power.json"
    measured_programs = {path.stem: programs_report.load(path)
                         for path in sorted((inputs / programs_report.PROGRAMS_DIR).glob("*.json"))}
    # The stored sweeps are read where they are copied to (previous.json, baseline.json beside them).
    report_module.write_report(newest_sweep(inputs), out / "README.md", machines,
                               read_json(power) if power.exists() else None, measured_programs)
    return ["README.md", *(f"{store.MACHINES}/{machine}/README.md" for machine in machines)]


def cell_text(text: str) -> str:
    """A cell as a reader sees it, whatever wrote it: Markdown emphasis, code marks and HTML
    tags dropped, entities decoded, line breaks and runs of spaces as one space."""
    text = re.sub(r"<br\s*/?>", " ", text)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    text = text.replace("**", "").replace("`", "").replace("\u200b", "")
    return " ".join(text.split())


def _unique(names: list[str]) -> list[str]:
    """'x', 'x #2', 'x #3': names made unique in order (rows and columns may repeat a label)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return unique


def keyed(tables: list[dict]) -> dict[str, str]:
    """(heading, row, column) -> cell for every table, as 'heading ¦ row ¦ column'. A row is
    named by its first cell (with '#n' where it repeats), a heading by the section or
    sub-section the table sits under (with '#n' for its second table ...)."""
    found = {}
    headings = _unique([t["heading"] for t in tables])
    for heading, table in zip(headings, tables):
        columns = _unique([cell_text(h) for h in table["headers"]])
        labels = _unique([cell_text(row[0]) if row else "" for row in table["rows"]])
        for label, row in zip(labels, table["rows"]):
            for column, cell in zip(columns[1:], row[1:]):
                found[f"{heading} ¦ {label} ¦ {column}"] = cell_text(cell)
    return found


def markdown_tables(text: str) -> list[dict]:
    """Every table of a Markdown document (GitHub pipes), under the heading it sits in."""
    tables, heading, lines = [], "", text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and index + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[index + 1]):
            headers, rows = _pipe_cells(line), []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(_pipe_cells(lines[index]))
                index += 1
            tables.append({"heading": heading, "headers": headers, "rows": rows})
            continue
        index += 1
    return tables


def _pipe_cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def markdown_prose(text: str) -> dict[str, str]:
    """Heading -> the text under it that is not a table (paragraphs and lists)."""
    found: dict[str, list[str]] = {}
    text = STALE_FILES.sub("", text)
    heading = ""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif not line.startswith("|"):
            found.setdefault(heading, []).append(line)
    return {heading: cell_text(" ".join(lines)) for heading, lines in found.items()}


# report.html: each table's data is in the page as DataTables' JSON (itables' `data_json`),
# its headers in `table_html`; the heading is the sub-heading or section it sits under.
_HTML_PARTS = re.compile(r'<h([23])[^>]*>(.*?)</h\1>|"data_json": ("(?:[^"\\]|\\.)*"),\s*(?:"[a-z_]+": .*?,\s*)*?'
                         r'"table_html": ("(?:[^"\\]|\\.)*")', re.S)


def html_tables(text: str) -> list[dict]:
    tables, heading = [], ""
    for found in _HTML_PARTS.finditer(text):
        if found.group(1):
            heading = cell_text(found.group(2))
            continue
        rows = json.loads(json.loads(found.group(3)))
        headers = re.findall(r"<th[^>]*>(.*?)</th>", json.loads(found.group(4)), re.S)
        tables.append({"heading": heading, "headers": headers,
                       "rows": [["" if cell is None else str(cell) for cell in row] for row in rows]})
    return tables


def html_prose(text: str) -> dict[str, str]:
    """Heading -> the text under it outside the tables' data (prose, lists, captions)."""
    text = STALE_FILES.sub("", text)
    text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>", " ", text, flags=re.S)
    text = re.sub(r'<div id="[^"]*_fallback">.*?</div>', " ", text, flags=re.S)
    found: dict[str, list[str]] = {}
    heading = ""
    for part in re.split(r"(<h[23][^>]*>.*?</h[23]>)", text, flags=re.S):
        title = re.match(r"<h[23][^>]*>(.*?)</h[23]>", part, re.S)
        if title:
            heading = cell_text(title.group(1))
        else:
            found.setdefault(heading, []).append(part)
    return {heading: cell_text(" ".join(parts)) for heading, parts in found.items()}


# Which measured files changed since a sweep's commit is asked of the work tree, not read from
# the sweep: the list (and its "and 5 more") changes with whatever is being edited; the wrapped
# prose may break the line before its parenthesis.
STALE_FILES = re.compile(r"changed since\s+\([^)]*\)")
# A figure in running text: a number with its sign, thousands, decimals and percent.
NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?\s?%?")


def numbers(text: str) -> set[str]:
    return {n.replace(" ", "") for n in NUMBER.findall(text)}


def snapshot(out: Path) -> dict:
    """What the reports hold today: every table cell and every figure of the prose, per README,
    and every headline.json as written."""
    taken = {}
    for name in regenerate(out):
        readme = (out / name).read_text()
        taken[name] = {"cells": keyed(markdown_tables(readme)),
                       "prose_numbers": {h: sorted(numbers(t)) for h, t in markdown_prose(readme).items()},
                       "headline": json.loads((out / name).with_name("headline.json").read_text())}
    return taken


FIXTURE = Path(__file__).parent / "fixtures" / "report_figures.json.gz"


def stored_inputs(results: Path = RESULTS) -> dict[str, str]:
    """sha256 of every stored file the reports were written from when the snapshot was taken:
    the sweeps, the gate's power, the programs (the snapshot holds for these)."""
    import hashlib

    paths = [*results.glob(f"{store.MACHINES}/*/*.json"), results / "gate_power.json",
             *results.glob(f"{programs_report.PROGRAMS_DIR}/*.json")]
    return {str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)
            if p.exists() and p.name not in store.NOT_RESULTS}


def write_fixture(out: Path) -> None:
    import gzip

    data = {"inputs": stored_inputs(), "reports": snapshot(out)}
    FIXTURE.parent.mkdir(exist_ok=True)
    with gzip.open(FIXTURE, "wt", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=0, sort_keys=True)


def read_fixture() -> dict:
    import gzip

    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        return json.load(f)


if __name__ == "__main__":
    # Take the snapshot again, after the stored sweeps changed (make bench, tapbench merge).
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_fixture(Path(folder))
    print(f"written: {FIXTURE}")
