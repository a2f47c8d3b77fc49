"""The report's sections (bench/document/sections/): each reads its probe section as typed
entries, the README answers on one screen for every stored sweep, its sentences say 'cheapest'
only where intervals separate, and a stored kernel matrix joins the report and the verdicts."""
import json
import shutil

import pytest

from bench.document import report as report_module
from bench.document.rows import Document, ResultsError
from bench.document.sections import advice, decision
from bench.document.sections.ceiling import Ceiling
from bench.document.sections.privileges import Privilege
from tests.report_figures import RESULTS, newest_sweep

STORED = sorted(RESULTS.glob("machines/*/latest.json"))
CEILING = {"method": "ebpf", "options": {}, "target": "go", "unobserved_max": 1e6, "ceiling": 5e5,
           "first_failure": 5.5e5, "limited_by": "loss", "probes": [{"offered": 5e5, "held": True}]}


def with_section(name: str, entries: list) -> Document:
    return Document(metadata={}, methods={}, runs=[], sections={name: entries})


def test_an_entry_refuses_an_unknown_or_missing_key_and_takes_what_older_formats_lack_as_absent():
    ceiling = Ceiling.of(with_section("ceilings", [CEILING]))[0]
    assert ceiling.placement is None and ceiling.where() == "free" and ceiling.probes[0].offered == 5e5
    assert [s.ceiling for s in ceiling.all_searches()] == [5e5]  # one search where none is recorded
    with pytest.raises(ResultsError, match="ceilings, entry 0: unknown ceilnig"):
        Ceiling.of(with_section("ceilings", [CEILING | {"ceilnig": 1}]))
    with pytest.raises(ResultsError, match="missing limited_by"):
        Ceiling.of(with_section("ceilings", [{k: v for k, v in CEILING.items() if k != "limited_by"}]))
    with pytest.raises(ResultsError, match="ceiling is 'high'"):
        Ceiling.of(with_section("ceilings", [CEILING | {"ceiling": "high"}]))
    with pytest.raises(ResultsError, match="as_user: missing worked"):
        Privilege.of(with_section("privileges", [{"method": "ebpf", "options": {}, "minimum": "none",
                                                  "as_user": {"uid": 1, "capabilities": "none", "error": None}}]))


@pytest.mark.parametrize("path", STORED, ids=[p.parent.name for p in STORED])
def test_every_readme_answers_on_one_screen(tmp_path, path):
    machines = {p.parent.name: Document.load(p) for p in STORED} if path == newest_sweep(RESULTS) else None
    report_module.write_report(path, tmp_path / "README.md", machines)
    lines = (tmp_path / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    assert max(len(line) for line in lines if line.startswith("|")) <= 160
    table = lines.index("## Which technique")
    assert table < 40 and next(i for i in range(table, len(lines)) if lines[i].startswith("| ")) < 40
    techniques = json.loads((tmp_path / "headline.json").read_text())["techniques"]
    rows = [line for line in lines[table:] if line.startswith("| ") and "technique, placement" not in line]
    assert all(any(row.startswith(f"| {t['name']}") for row in rows) for t in techniques)
    # every other section named, linked into the page beside it
    page = (tmp_path / "report.html").read_text()
    for anchor in ("every-run", "intrusiveness-matrix", "provenance"):
        assert f"(report.html#{anchor})" in "\n".join(lines) and f'<section id="{anchor}">' in page


def test_what_a_technique_sees_comes_from_its_declaration_and_the_rows_findings():
    document = Document.load(newest_sweep(RESULTS))
    data = json.loads((RESULTS / "headline.json").read_text())
    codes = {p.name: decision.sees_code(p) for p in decision.profiles(document, data)}
    # preload declares libc only; static Go is a finding of its rows (not applicable) for sud
    assert codes["preload"] == "··L··" and codes["sud"][0] == "·" and codes["ptrace"][0] == "G"
    assert decision.noticed_code(["LD_PRELOAD set", "library a.so", "library b.so"]) == "E L2"
    assert decision.capability_code("CAP_BPF+CAP_PERFMON") == "BPF+PERF"


def profile(name: str, value: float, low: float, high: float) -> decision.Profile:
    cell = {"value": value, "interval": [low, high], "unstable": []}
    entry = {"name": name, "reference_peer": False, "row": {"target": "go"},
             "cells": {"cpu_cost_ns_per_event": cell, "overhead_ns": cell}}
    return decision.Profile(name, entry, {}, {}, None, [])


def test_cheapest_is_said_only_where_the_intervals_separate_and_nothing_is_divided():
    apart = advice.ranked([profile("b", 500, 400, 600), profile("a", 70, 60, 80)], "cpu_cost_ns_per_event")
    assert apart.startswith("a 70 [60, 80] ns (go) is the cheapest; above it: b 500 [400, 600] ns")
    close = advice.ranked([profile("a", 70, 60, 80), profile("b", 75, 51, 101), profile("c", 900, 800, 990)],
                          "cpu_cost_ns_per_event")
    assert "none is called the cheapest" in close and "c " not in close and "×" not in close


def matrix(tmp_path) -> dict:
    cell = {"method": "ebpf", "options": {"loader": "core"}, "target": "go", "outcome": "exact", "detail": "",
            "needs": [], "missing": [], "headers_hidden": True}
    cells = [cell | {"technique": "ebpf --loader core"},
             cell | {"technique": "ptrace", "method": "ptrace", "options": {}, "headers_hidden": False},
             cell | {"technique": "preload", "method": "preload", "options": {}, "target": "libc",
                     "headers_hidden": False}]
    columns = [{"name": release, "package": None, "package_version": None, "series": None, "release": release,
                "headers": None, "accel": "tcg", "emulated": True, "error": None, "features": {}, "cells": cells}
               for release in ("5.10.0-32-amd64", "6.1.0-50-amd64", "6.18.44")]
    return {"format": 1, "commit": "0" * 40, "dirty": False, "date": "2026-12-06", "moves": 300,
            "cell_timeout_s": 240, "techniques": ["ebpf --loader core", "ptrace", "preload"], "kernels": columns}


def test_a_stored_kernel_matrix_joins_the_report_and_judges_the_kernel_claims(tmp_path):
    pytest.importorskip("bench.kernels.matrix", reason="bench/kernels (tapbench kernels) is not here")
    results = tmp_path / "results"
    stored = newest_sweep(RESULTS)
    folder = results / "machines" / stored.parent.name
    folder.mkdir(parents=True)
    shutil.copy(stored, folder / "latest.json")
    (results / "kernels.json").write_text(json.dumps(matrix(tmp_path)))
    report_module.write_report(folder / "latest.json", results / "README.md",
                               {stored.parent.name: Document.load(folder / "latest.json")})
    data = json.loads((results / "headline.json").read_text())
    claims = {t["name"]: next((c for c in t["claims"] if c["aspect"] == "kernel_dependence"), None)
              for t in data["techniques"]}
    assert claims["ebpf"]["verdict"] == "holds" and "CO-RE" in claims["ebpf"]["why"]
    assert claims["ptrace"]["verdict"] == "does not hold" and claims["ebpf"]["measured"]["kernels"][0].startswith("5.10")
    assert "Every technique on every kernel" in (results / "report.html").read_text()


@pytest.mark.parametrize("cell, shown", [
    ({"value": 1050, "interval": [996, 1080]}, "1.05 [0.996, 1.08] µs"),  # a bound under 1 µs, in µs too
    ({"value": 990, "interval": [950, 1010]}, "0.99 [0.95, 1.01] µs"),
    ({"value": 142, "interval": [131, 149], "unstable": ["spread"]}, "142 [131, 149] ns ⚠"),
    ({"value": None, "interval": None}, "-"),
])
def test_a_decision_cell_shows_its_median_and_interval_in_one_unit(cell, shown):
    assert decision.interval_text(cell) == shown
