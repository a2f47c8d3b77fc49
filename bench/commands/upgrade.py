"""`tapbench upgrade`: results files of an older format converted in place."""
from __future__ import annotations

from bench import plan
from bench.document.rows import read_json
from bench.run.results import RESULTS_FORMAT, ResultsError, upgrade_document

def add_parser(commands) -> None:
    upgrade = commands.add_parser("upgrade", help="convert results files of an older format to this one, in place "
                                                  "(what the old file did not record comes from today's code)")
    upgrade.add_argument("files", nargs="+", metavar="FILE")
    upgrade.set_defaults(handler=run)


def run(args) -> int:
    groups = [(group.name, group.workload, group.lineup) for group in plan.full_groups() + plan.QUICK_GROUPS]
    for name in args.files:
        data = read_json(name)
        if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
            print(f"{name}: already results format {RESULTS_FORMAT}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise ResultsError(f"{name} is not a tapbench results file")
        upgrade_document(data, groups, plan.primary_groups()).write(name)
        print(f"{name}: results format {data['format']} -> {RESULTS_FORMAT}")
    return 0
