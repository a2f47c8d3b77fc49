"""`tapbench run`: the opponent (or any program: -- CMD) bare and observed, verified, a table."""
from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from dataclasses import replace

from bench import sweep as sweep_module
from bench.run import program as program_module
from bench.commands.common import MAX_MOVES, MAX_RATE, PLACEMENT_HELP, USER_HELP, UsageError, add_method_arguments, launched_as, observer_options, parse_methods, positive_int, print_program, progress, seconds_arg
from bench.document import programs as programs_report, report as report_module
from bench.run.placement import PLACEMENTS, cpus_for
from bench.run.referee import unavailable_reason as referee_unavailable_reason
from bench.run.results import add_floor_ratios, label_of, make_document, summarize
from bench.run.runner import compare
from bench.run.targets import TARGETS, Workload, target_seen_by_all
from methods import ObserverUnavailable, REGISTRY
from methods._kernel.bpf_system import bpf_run_time_stats

OPPONENT_OPTIONS = {"target": None, "moves": "100000", "rate": "0", "goroutines": "1", "seed": "1", "noise": "0"}
PROGRAM_OPTIONS = ("fd", "output", "timeout")


def add_parser(commands) -> None:
    run = commands.add_parser(
        "run", help="run the opponent (or any program: -- CMD) bare and observed, verify, print a table",
        epilog="With -- CMD ARGS...: CMD instead of the opponent, every run beside the referee, the kernel's own "
               "count of CMD's write() calls to --fd (its children's included); each capture is held to that count. "
               "The opponent's options (--target, --moves, --rate, --goroutines, --seed, --noise) do not apply.")
    add_method_arguments(run, sorted(REGISTRY), several=True)
    run.add_argument("--target", choices=list(TARGETS),
                     help="go: static pure-Go build, raw syscalls; cgo: cgo build, raw syscalls; "
                          "libc: cgo build via glibc write() (default: the first every method "
                          "can see)")
    run.add_argument("--moves", help="moves per run (default 100000)")
    run.add_argument("--rate", help="moves per second, 0 = flat out (default)")
    run.add_argument("--goroutines", help="concurrent writers (default 1)")
    run.add_argument("--seed", help="seed of the move sequence (default 1)")
    run.add_argument("--noise", help="every N moves the opponent also writes "
                     "non-moves (empty, 1 MiB, binary, split lines, other fd); 0 = never")
    run.add_argument("--repeats", help="bare/observed pairs, interleaved (default 3; with -- CMD 5)")
    run.add_argument("--fd", help="with -- CMD: the descriptor whose write() calls are events (default 1, stdout). "
                                  "CMD inherits 0 (/dev/null), 1 and 2 (both to --output) and no other descriptor")
    run.add_argument("--output", metavar="FILE", help="with -- CMD: append CMD's stdout and stderr here (default: discarded)")
    run.add_argument("--timeout", metavar="SECONDS",
                     help=f"with -- CMD: kill a run that lasts longer (default {program_module.DEFAULT_TIMEOUT_S:g})")
    run.add_argument("cmd", nargs="*", help="a program to measure instead of the opponent (after --)")
    run.add_argument("--json", metavar="FILE", help="write the results (metadata + runs) here")
    run.add_argument("--placement", choices=PLACEMENTS,
                     help=PLACEMENT_HELP + " (default: each method's own, the one measured cheaper for it)")
    run.add_argument("--user", help=USER_HELP)
    run.add_argument("--bpf-stats", action="store_true",
                     help="have the kernel time every run of the BPF programs and print ns per run (each run "
                          "then pays two clock reads: overheads measured with it are inflated)")
    run.set_defaults(handler=run_command)


def run_command(args) -> int:
    methods = parse_methods(args.method, sorted(REGISTRY))
    if args.cmd:
        return command_run_program(args, methods)
    given = [name for name in PROGRAM_OPTIONS if getattr(args, name) is not None]
    if given:
        raise UsageError(f"--{given[0]} applies to a program given after --, not to the opponent")
    for name, default in OPPONENT_OPTIONS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    workload = Workload(
        target=args.target or target_seen_by_all(methods) or "go",
        moves=positive_int(args.moves, "--moves", MAX_MOVES),
        rate=0 if args.rate == "0" else positive_int(args.rate, "--rate", MAX_RATE),
        goroutines=positive_int(args.goroutines, "--goroutines", 4096),
        seed=int(args.seed) if args.seed.isdigit() else positive_int(args.seed, "--seed", 2**63),
        noise=0 if args.noise == "0" else positive_int(args.noise, "--noise", MAX_MOVES),
        user=launched_as(args.user).name,
    )
    repeats = positive_int(args.repeats or "3", "--repeats", 1000)
    lineup = [(method, observer_options(args, method, methods)) for method in methods]
    if args.ebpf:
        return print_program(methods[0], 0, lineup[0][1])
    workload.binary()
    for method, options in lineup:
        reason = REGISTRY[method].unavailable_reason(**options)
        if reason:
            raise ObserverUnavailable(f"{method} unavailable: {reason}")
    # Each method in the placement asked for, or in its own default; the methods of one
    # placement run interleaved with bare runs in that same placement.
    by_placement: dict[str, list] = {}
    for method, options in lineup:
        placement = args.placement or REGISTRY[method].default_placement
        cpus_for(placement)  # refuses split on a machine with one CPU, before anything runs
        by_placement.setdefault(placement, []).append((method, options))
    rows, comparisons = [], []
    for placement, group in by_placement.items():
        placed = replace(workload, placement=placement)
        with bpf_run_time_stats() if args.bpf_stats else nullcontext():
            bare, observed = compare(group, placed, repeats, progress)
        group_rows = [summarize(method, options, placed, bare, executions)
                      for (method, options), executions in zip(group, observed)]
        add_floor_ratios(group_rows)
        rows += group_rows
        # Paced, the overhead is ~0 and a ratio of two says nothing.
        comparisons += [] if workload.rate else sweep_module.same_run_ratios(group_rows)
    document = make_document(rows, comparisons=comparisons)
    print(report_module.runs_table(document, fmt="simple"))
    for comparison in comparisons:
        print(f"overhead of {comparison['method']} / {comparison['baseline']}: "
              f"{comparison['ratio']:.2f} (median of {len(comparison['samples'])} same-repeat ratios)")
    if args.bpf_stats:
        print_program_times(rows)
    if args.json:
        document.write(args.json)
        print(f"results written to {args.json}")
    if any(row.exact is False for row in rows):
        print("ERROR: a capture was not exact (see captured/lost/phantom above)", file=sys.stderr)
        return 1
    return 0


def command_run_program(args, methods: list[str]) -> int:
    """run -- CMD: CMD bare and under each method, each run beside the referee
    (bench/run/program.py)."""
    given = [name for name in OPPONENT_OPTIONS if getattr(args, name) is not None]
    if given:
        raise UsageError(f"--{given[0]} describes the opponent; with -- CMD, CMD is what runs")
    if args.bpf_stats or args.ebpf:
        raise UsageError(f"--{'bpf-stats' if args.bpf_stats else 'ebpf'} applies to the opponent's runs only")
    if args.fd is not None and not args.fd.isdigit():
        raise UsageError(f"--fd must be a descriptor number, got {args.fd!r}")
    fd = 1 if args.fd is None else int(args.fd)
    repeats = positive_int(args.repeats or "5", "--repeats", 1000)
    timeout_s = seconds_arg(args.timeout, "--timeout", 24 * 3600) if args.timeout else program_module.DEFAULT_TIMEOUT_S
    user = launched_as(args.user)
    lineup = []
    for method in methods:
        options = observer_options(args, method, methods)
        reason = REGISTRY[method].unavailable_reason(**options)
        if reason:
            raise ObserverUnavailable(f"{method} unavailable: {reason}")
        placement = args.placement or REGISTRY[method].default_placement
        cpus_for(placement)
        lineup.append((method, options, placement))
    reason = referee_unavailable_reason()
    if reason:
        raise ObserverUnavailable(f"the referee cannot run here: {reason}")
    output = os.path.abspath(args.output) if args.output else None
    document, rows = program_module.measure(lineup, args.cmd, fd, repeats, user, output, timeout_s, progress)
    print(programs_report.table(document))
    for line in programs_report.notes(document):
        print(line)
    if args.json:
        program_module.write_json(args.json, document, rows)
        print(f"results written to {args.json}")
    failed = [row for row in document["rows"] if row["exact"] is False or row["failures"]]
    if failed:
        print(f"ERROR: {', '.join(row['label'] for row in failed)}: a capture was not the kernel's count, or CMD "
              "failed under observation (see above)", file=sys.stderr)
        return 1
    return 0


def print_program_times(rows) -> None:
    """Per BPF program of each row, over its repeats: runs per move and ns per run as the kernel
    timed them (the timing's own two clock reads included)."""
    for row in rows:
        programs: dict[str, list[int]] = {}
        for mechanism in row.mechanism:
            for name, stats in mechanism.get(row.method, {}).get("programs", {}).items():
                totals = programs.setdefault(name, [0, 0])
                totals[0] += stats["runs"]
                totals[1] += stats["run_ns"]
        if not programs and not REGISTRY[row.method].baseline:
            print(f"{label_of(row.method, row.options)}: no BPF program of tapbench's own to time")
        moves = row.moves * len(row.mechanism)
        for name, (runs, run_ns) in programs.items():
            print(f"{label_of(row.method, row.options)} {name}: {runs / moves:.3f} runs/move, "
                  f"{run_ns / runs if runs else 0:.0f} ns/run (timing included)")
