"""`tapbench bench` (and `sweep`): every available technique measured; results/ rewritten."""
from __future__ import annotations

import sys
from pathlib import Path

from bench import plan, store
from bench import sweep as sweep_module
from bench.commands.common import RESULTS_DIR, UsageError, positive_int
from bench.commands.report import write_reports
from bench.document import report as report_module
from bench.document.rows import Document
from bench.run.placement import PLACEMENTS, cpus_for
from bench.run.results import ResultsError, document_of, uncommitted_changes
from methods import REGISTRY

def add_parser(commands) -> None:
    for name in ("bench", "sweep"):
        bench = commands.add_parser(name, help="measure every available method; rewrite results/"
                                    + (" (same as bench)" if name == "sweep" else ""))
        bench.add_argument("--quick", action="store_true",
                           help="a short sweep (about a minute) that fits in CI; writes quick.json only")
        bench.add_argument("--repeats", help=f"bare/observed pairs per row (default {sweep_module.FULL_REPEATS}, "
                           f"{sweep_module.QUICK_REPEATS} with --quick)")
        bench.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default results/)")
        bench.add_argument("--placement", choices=PLACEMENTS,
                           help="measure in this placement only (default: shared and split; the quick "
                                "sweep: shared)")
        bench.add_argument("--baseline", action="store_true",
                           help="with --quick: store the sweep as this machine's gate baseline")
        bench.add_argument("--allow-dirty", action="store_true",
                           help="measure with uncommitted changes; the results say so")
        bench.add_argument("--plan", action="store_true",
                           help="print what would be measured (groups, rows, probes) and how long the last "
                                "such sweep here took; measure nothing")
        bench.set_defaults(handler=run)


def run(args) -> int:
    default_repeats = sweep_module.QUICK_REPEATS if args.quick else sweep_module.FULL_REPEATS
    repeats = positive_int(args.repeats or str(default_repeats), "--repeats", 1000)
    out = Path(args.out)
    if args.plan:
        return print_plan(args.quick, sweep_module.swept_placements(args.quick, args.placement), repeats, out)
    changed = uncommitted_changes()
    if args.baseline and not args.quick:
        raise UsageError("--baseline applies to --quick only (the gate's sweep)")
    if changed and (not args.quick or args.baseline) and not args.allow_dirty:
        raise UsageError(f"{len(changed)} file(s) differ from the commit ({', '.join(changed[:3])}"
                         f"{' ...' if len(changed) > 3 else ''}): results must come from a commit. "
                         "Commit first, or pass --allow-dirty (the results are then marked dirty)")
    if args.placement:
        cpus_for(args.placement)  # refuses split on a machine with one CPU
    found = document_of(sweep_module.sweep(args.quick, repeats, args.placement))
    path = store.store_quick(out, found, args.baseline) if args.quick else store.store_full(out, found)
    document = Document.load(path)
    runs, meta = document.runs, document.metadata
    print(report_module.runs_table(document, fmt="simple"))
    written = [path] if args.quick else [path, *write_reports(out)]
    print(f"results written to {', '.join(str(p) for p in written)} ({meta['wall_s']} s)")
    inexact, peers = sweep_module.inexact_rows(runs)
    for row in peers:
        print(f"note: reference peer {document.label(row)} on {row.target} was not exact: "
              f"{row.lost} lost ({row.lost_reported} counted by it), in order: {row.in_order}",
              file=sys.stderr)
    if inexact:
        print(f"ERROR: {len(inexact)} row(s) did not capture exactly", file=sys.stderr)
        return 1
    return 0


def print_plan(quick: bool, placements: tuple[str, ...], repeats: int, out: Path) -> int:
    for line in plan.describe(quick, placements, repeats,
                              lambda method, options: REGISTRY[method].unavailable_reason(**options)):
        print(line)
    print()
    try:
        stored = (store.this_machine_dir(out) / "baseline.json") if quick else store.current_sweep(out)
        last = Document.load(stored).metadata
    except ResultsError:
        print("how long it takes: no sweep of this kind is stored yet")
        return 0
    here = stored.parent == store.this_machine_dir(out)
    phases = ", ".join(f"{kind} {seconds:.0f} s" for kind, seconds in sorted(last.get("phase_s", {}).items(),
                                                                             key=lambda item: -item[1]))
    print(f"how long it takes: the last such sweep {'on this machine' if here else f'on {stored.parent.name}'} "
          f"({last.get('date')}, commit {str(last.get('commit'))[:12]}) took {last.get('wall_s', 0):.0f} s"
          + (f": {phases}" if phases else "") + ("" if here else "; this machine may differ"))
    return 0
