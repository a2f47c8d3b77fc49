"""`tapbench gate`: exit 1 if this code regressed, against the code the published results come from."""
from __future__ import annotations

import signal
import sys

from bench import store
from bench.gate import ab as ab_module
from bench.gate import judge as gate_module
from bench.gate import power as power_module
from bench.commands.common import RESULTS_DIR, UsageError, positive_int, progress
from bench.document.rows import Document

def add_parser(commands) -> None:
    gate = commands.add_parser(
        "gate", help="exit 1 if this code regressed: capture, or speed against the code the published results "
                     "come from, both measured here in one run (or two stored results files, judged)")
    gate.add_argument("new", nargs="?", help="judge these stored results against --baseline instead of measuring")
    gate.add_argument("--baseline", help="with NEW: results to compare with (default: the baseline.json of the "
                                         "machine that measured NEW, or another machine's, said)")
    gate.add_argument("--across-machines", action="store_true",
                      help="with NEW: fail speed regressions even when the baseline is from another machine")
    gate.add_argument("--against", metavar="REF", help="the reference commit measured beside this code (default: "
                                                       "the commit of the newest stored full sweep)")
    gate.add_argument("--repeats", help=f"rounds of the A/B (default {ab_module.REPEATS})")
    gate.add_argument("--power", metavar="ROUNDS",
                      help="the gate's power benchmark: this many A/B gates against this very code, unchanged and "
                           "with a regression injected in each layer; says how often each failed (an hour or more)")
    gate.add_argument("--accept-missing", action="store_true",
                      help="pass although a gated row could not run here (a backend unavailable, one CPU)")
    gate.add_argument("--accept-inexact-baseline", action="store_true",
                      help="pass although the reference's capture of a row was not exact")
    gate.add_argument("--accept-undecided", action="store_true",
                      help="pass although a row had too few repeats, or another definition, to be judged")
    gate.add_argument("--threshold", type=float, default=ab_module.THRESHOLD,
                      help=f"relative growth that counts (default {ab_module.THRESHOLD})")
    gate.add_argument("--alpha", type=float, default=ab_module.ALPHA,
                      help=f"significance level after Holm's correction over the run's comparisons (default "
                           f"{ab_module.ALPHA}; with NEW: of each Mann-Whitney U test)")
    gate.set_defaults(handler=run)


def run(args) -> int:
    if args.new:
        return gate_files(args)
    # Killed politely (CI's timeout, Ctrl-C), the gate still removes its worktree and workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.baseline or args.across_machines:
        raise UsageError("--baseline and --across-machines judge stored results: give the NEW results file too")
    repeats = positive_int(args.repeats or str(ab_module.REPEATS), "--repeats", 1000)
    ref = args.against or ab_module.default_reference(RESULTS_DIR)
    if args.power:
        rounds = positive_int(args.power, "--power", 1000)
        return power_module.power(rounds, repeats, args.threshold, args.alpha, RESULTS_DIR)
    print(f"gate: this code against {ref[:12]} (methods/, preload/ and bpf/ of that commit), measured here, "
          f"{repeats} rounds, interleaved", file=sys.stderr)
    passed = ab_module.ab_gate(ref, repeats, repeats, args.threshold, args.alpha, args.accept_missing,
                               args.accept_inexact_baseline, args.accept_undecided, progress=progress)
    if not passed:
        print("ERROR: the gate failed (see the verdicts above)", file=sys.stderr)
        return 1
    print(f"gate passed: speed and capture gated on this machine against {ref[:12]}")
    return 0


def gate_files(args) -> int:
    new = Document.load(args.new)
    baseline_path = args.baseline
    if baseline_path is None:
        # The baseline of the machine that measured the new results, if it has one.
        baseline_path, fallback = store.baseline_for(RESULTS_DIR, new.metadata)
        if fallback:
            print(f"warning: {fallback}", file=sys.stderr)
    failed = gate_module.gate(Document.load(baseline_path), new, args.threshold, args.alpha, args.across_machines,
                              args.accept_undecided)
    if failed:
        print(f"ERROR: {len(failed)} regression(s) or rows not judged: " + "; ".join(c.label for c in failed),
              file=sys.stderr)
        return 1
    print(f"gate passed against {baseline_path}")
    return 0
