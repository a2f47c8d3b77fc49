"""`tapbench report`: results/README.md, report.html and every machine's, from stored results only."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench import store
from bench.commands.common import RESULTS_DIR
from bench.document import programs as programs_report, report as report_module
from bench.document.rows import Document, read_json

def add_parser(commands) -> None:
    report = commands.add_parser("report", help="regenerate results/README.md and every machine's, with "
                                                 "their plots, from stored results only")
    report.add_argument("--json", help="the sweep to detail (default: this machine's latest, or the most "
                                       "recent of any machine)")
    report.add_argument("--out", help="the README to write (default: results/README.md)")
    report.add_argument("--results", default=str(RESULTS_DIR), help=argparse.SUPPRESS)
    report.set_defaults(handler=run)


def write_reports(results: Path, current: Path | None = None, readme: Path | None = None) -> list[Path]:
    """results/README.md (the current machine's sweep and the cross-machine table) and each
    stored machine's own README, with their plots. Given a README to write (--out), only that
    one and what goes beside it, in its folder: nothing under results/ is touched."""
    current = current or store.current_sweep(results)
    Document.load(current)  # a bad --json fails here, before any stored machine's README is rewritten
    machines = store.latest_sweeps(results)
    written = []
    for machine in machines if readme is None else ():
        folder = results / store.MACHINES / machine
        written += report_module.write_report(folder / "latest.json", folder / "README.md")
    power = results / "gate_power.json"  # the gate's power benchmark, measured by hand
    # Programs measured with run -- CMD, kept by hand (bench/document/programs.py).
    measured_programs = {path.stem: programs_report.load(path)
                         for path in sorted((results / programs_report.PROGRAMS_DIR).glob("*.json"))}
    written += report_module.write_report(current, readme or results / "README.md", machines,
                                          read_json(power) if power.exists() else None, measured_programs)
    return written


def run(args) -> int:
    results = Path(args.results)
    written = write_reports(results, Path(args.json) if args.json else None, Path(args.out) if args.out else None)
    print(f"regenerated: {', '.join(str(p) for p in written)}")
    return 0
