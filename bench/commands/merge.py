"""`tapbench merge`: results written on other machines imported, the reports regenerated."""
from __future__ import annotations

from pathlib import Path

from bench import store
from bench.commands.common import RESULTS_DIR
from bench.commands.report import write_reports

def add_parser(commands) -> None:
    merge = commands.add_parser("merge", help="import results files written by tapbench on other machines "
                                              "(files or folders), then regenerate the reports")
    merge.add_argument("sources", nargs="+", metavar="FILE|DIR")
    merge.add_argument("--results", default=str(RESULTS_DIR), help="results folder (default results/)")
    merge.set_defaults(handler=run)


def run(args) -> int:
    for line in store.merge(Path(args.results), args.sources):
        print(f"merged {line}")
    write_reports(Path(args.results))
    return 0
