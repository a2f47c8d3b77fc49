"""tapbench command line: run, watch, bench, report.

Examples:
  tapbench run --method ebpf --target go --moves 1000000 --json run.json
  tapbench run --method ebpf --hook tracepoint --goroutines 8 --moves 200000
  tapbench run --method ebpf,ptrace,preload -- dd if=/dev/zero bs=64 count=100000   # any program
  tapbench run --method ebpf,strace --fd 2 --repeats 7 -- python3 -c 'import sys; sys.stderr.write("x")'
  tapbench watch --method ebpf --name rock-paper-scissors
  tapbench watch --method ebpf -- gotargets/bin/rock-paper-scissors -moves 20 -rate 10
  tapbench bench            # what `make bench` runs: every available method, results/ rewritten
  tapbench sweep --quick    # the short sweep CI runs (results/quick.json)
  tapbench report           # regenerate results/README.md from the stored sweeps
  tapbench gate             # this code against the one the published results come from, same run
  tapbench merge ci-artifacts/   # import sweeps measured on other machines
  tapbench upgrade old.json      # convert a results file of an older format, in place
  tapbench cleanup          # remove what a killed run left behind (run/watch/bench do it too)
  tapbench kernels          # every technique on Debian's 5.10, 6.1, 6.12 (virtme-ng) and this kernel
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from bench import cleanup
from bench import duel as duel_module
from bench import ab as ab_module
from bench import gate as gate_module
from bench.kernels import command as kernels_module
from bench import program as program_module
from bench import power as power_module
from bench import store
from bench import sweep as sweep_module
from bench import watch as watch_module
from bench.document import compare as compare_module
from bench.document import programs as programs_report
from bench.document import report as report_module
from bench.document.rows import Document, read_json
from bench.results import (RESULTS_FORMAT, ResultsError, add_floor_ratios, document_of, label_of, make_document,
                           summarize, uncommitted_changes, upgrade_document)
from bench.placement import PLACEMENTS, PlacementNotApplicable, cpus_for
from bench.referee import unavailable_reason as referee_unavailable_reason
from bench.runner import TargetFailed, compare
from bench.targets import (OPPONENT_NAME, ROOT, TARGETS, TargetMissing, Workload, is_opponent,
                           target_seen_by_all)
from bench.truth import TruthMismatch
from methods import REGISTRY, ObserverError, ObserverUnavailable
from methods.base import move_word
from methods.process import TargetUser, check_pid
from methods.bpf_system import bpf_run_time_stats

RESULTS_DIR = ROOT / "results"
MAX_MOVES = 100_000_000
MAX_RATE = 10_000_000


class UsageError(Exception):
    pass


def bounded_number(text: str, name: str, convert, kind: str, low, high, unit: str = ""):
    """text as a number (convert: int or float) from low to high, or a UsageError that says why."""
    try:
        value = convert(text)
    except ValueError:
        raise UsageError(f"{name} must be {kind}, got {text!r}") from None
    if not low <= value <= high:
        def show(number) -> str:
            return f"{number:,}" if isinstance(number, int) else f"{number:g}"
        raise UsageError(f"{name} must be between {show(low)} and {show(high)}{unit}, got {show(value)}")
    return value


def seconds_arg(text: str, name: str, limit: float) -> float:
    return bounded_number(text, name, float, "a number of seconds", 0, limit, " seconds")


def positive_int(text: str, name: str, limit: int) -> int:
    return bounded_number(text, name, int, "a whole number", 1, limit)


def declared_options(methods: list[str]) -> dict[str, tuple[dict, list[str]]]:
    """Option name -> (its settings, the methods declaring it). Backends that share an option
    declare the same settings (Observer checks it when they register)."""
    found: dict[str, tuple[dict, list[str]]] = {}
    for method in methods:
        for name, spec in REGISTRY[method].cli_options.items():
            found.setdefault(name, (spec, []))[1].append(method)
    return found


def observer_options(args, method: str, methods: list[str]) -> dict:
    """The options of `method`, defaults filled in; a flag that belongs to none of `methods`
    is refused, naming the methods it belongs to."""
    chosen = REGISTRY[method].cli_options
    for name, (_, owners) in declared_options(sorted(REGISTRY)).items():
        if getattr(args, name, None) is not None and not set(owners) & set(methods):
            raise UsageError(f"--{name.replace('_', '-')} applies to --method {', '.join(owners)} only")
    given = {name: getattr(args, name) for name in chosen if getattr(args, name, None) is not None}
    options = {name: spec.get("default") for name, spec in chosen.items()} | given
    REGISTRY[method].check_options(**options)
    return options


def add_method_arguments(parser: argparse.ArgumentParser, methods: list[str],
                         several: bool = False) -> None:
    if several:
        parser.add_argument("--method", required=True,
                            help=f"observation technique(s), comma-separated: {', '.join(methods)}")
    else:
        parser.add_argument("--method", required=True, choices=methods,
                            help="observation technique")
    # Each backend declares its own flags (Observer.cli_options), an option shared by several
    # is added once; None means "not given".
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for name, (spec, owners) in declared_options(methods).items():
        if tuple(owners) not in groups:
            groups[tuple(owners)] = parser.add_argument_group(f"options of {', '.join(owners)}")
        spec = dict(spec)
        default = spec.pop("default", None)
        spec.pop("label", None)  # for result labels (bench/results.py), not argparse
        help_text = spec.pop("help", "") + (f" (default {default})" if default not in (None, False) else "")
        if spec.pop("flag", False):
            spec.update(action="store_const", const=True)
        groups[tuple(owners)].add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                                           help=help_text, **spec)
    # Like bcc tools: print the program the method would load (BPF C, a bpftrace script), exit.
    parser.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)


class Parser(argparse.ArgumentParser):
    """Bad arguments get one ERROR: line, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"ERROR: {message} (see {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tapbench", description=__doc__.split("\n")[0],
                                     epilog="\n".join(__doc__.split("\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

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
    placement_help = ("shared: target and observer on one CPU; split: target on one CPU, observer on the "
                      "others; free: the scheduler decides")
    run.add_argument("--placement", choices=PLACEMENTS,
                     help=placement_help + " (default: each method's own, the one measured cheaper for it)")
    user_help = ("run the launched program as this user (a name or a number); default: the user who invoked "
                 "tapbench (under sudo, SUDO_UID), never root unless asked for with --user root")
    run.add_argument("--user", help=user_help)
    run.add_argument("--bpf-stats", action="store_true",
                     help="have the kernel time every run of the BPF programs and print ns per run (each run "
                          "then pays two clock reads: overheads measured with it are inflated)")

    watch = commands.add_parser("watch", help="print the opponent's moves live")
    add_method_arguments(watch, sorted(name for name, cls in REGISTRY.items() if not cls.baseline))
    which = watch.add_mutually_exclusive_group()
    which.add_argument("--pid", help="attach to this process")
    which.add_argument("--name", help=f"attach to the one process with this name (e.g. {OPPONENT_NAME})")
    watch.add_argument("--wait", metavar="SECONDS",
                       help="with --name: wait this long for the process to start (default 0)")
    watch.add_argument("--pattern", metavar="REGEX",
                       help="a write is a move when this regex (one group: the move) matches it; "
                            "default: the first whole word rock, paper or scissors, any case")
    watch.add_argument("--raw", action="store_true", help="print every write as it came")
    watch.add_argument("--placement", choices=PLACEMENTS,
                       help=placement_help + " (default: the method's own, the one measured cheaper for it)")
    watch.add_argument("--user", help=user_help)
    watch.add_argument("cmd", nargs="*", help="or launch this command under observation (after --)")

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

    duel = commands.add_parser("duel", help="a spy answers each of the opponent's moves through a technique; "
                                            "a referee counts the answers given within each deadline")
    duel.add_argument("--method", required=True, help="technique(s) the spy watches through, comma-separated")
    duel.add_argument("--deadline-us", default=",".join(str(d) for d in duel_module.DEFAULT_DEADLINES_US),
                      help="deadline(s) in µs after the opponent's own stamp of a move, comma-separated")
    duel.add_argument("--moves", default="3000", help="moves of the opponent (default 3000)")
    duel.add_argument("--rate", default="1000", help="its moves per second (default 1000)")
    duel.add_argument("--target", choices=list(TARGETS), help="default: the first the methods all see")
    duel.add_argument("--placement", choices=PLACEMENTS, help="default: each method's own")
    duel.add_argument("--json", metavar="FILE", help="write the duels here (a results file)")

    commands.add_parser("cleanup", help="remove what a killed run left behind, and say what")

    compare_parser = commands.add_parser("compare", help="table of differences between two results files")
    compare_parser.add_argument("old")
    compare_parser.add_argument("new")
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
    compare_parser.add_argument("--threshold", type=float, default=0.10,
                                help="relative growth of the slowdown that counts (default 0.10)")
    compare_parser.add_argument("--alpha", type=float, default=0.01,
                                help="Mann-Whitney U significance level, one-sided (default 0.01)")
    gate.add_argument("--threshold", type=float, default=ab_module.THRESHOLD,
                      help=f"relative growth that counts (default {ab_module.THRESHOLD})")
    gate.add_argument("--alpha", type=float, default=ab_module.ALPHA,
                      help=f"significance level after Holm's correction over the run's comparisons (default "
                           f"{ab_module.ALPHA}; with NEW: of each Mann-Whitney U test)")

    report = commands.add_parser("report", help="regenerate results/README.md and every machine's, with "
                                                 "their plots, from stored results only")
    report.add_argument("--json", help="the sweep to detail (default: this machine's latest, or the most "
                                       "recent of any machine)")
    report.add_argument("--out", help="the README to write (default: results/README.md)")
    report.add_argument("--results", default=str(RESULTS_DIR), help=argparse.SUPPRESS)

    upgrade = commands.add_parser("upgrade", help="convert results files of an older format to this one, in place "
                                                  "(what the old file did not record comes from today's code)")
    upgrade.add_argument("files", nargs="+", metavar="FILE")

    merge = commands.add_parser("merge", help="import results files written by tapbench on other machines "
                                              "(files or folders), then regenerate the reports")
    merge.add_argument("sources", nargs="+", metavar="FILE|DIR")
    merge.add_argument("--results", default=str(RESULTS_DIR), help="results folder (default results/)")
    kernels_module.add_parser(commands)
    return parser


def progress(text: str) -> None:
    if sys.stderr.isatty():
        print(f"  {text}", file=sys.stderr, flush=True)


def print_program(method: str, pid: int, options: dict) -> int:
    text = REGISTRY[method].program_text(pid, **options)
    if text is None:
        with_programs = sorted(name for name, cls in REGISTRY.items() if cls.describe()["has_program"])
        raise UsageError(f"--ebpf: {method} loads no program; these do: {', '.join(with_programs)}")
    print(text)
    return 0


def parse_methods(text: str, allowed: list[str]) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in allowed]
    if not methods or unknown:
        raise UsageError(f"unknown method {', '.join(unknown) or repr(text)}; choose from "
                         f"{', '.join(allowed)} (several: --method ptrace,strace)")
    if len(set(methods)) != len(methods):
        raise UsageError(f"--method names a method twice: {text}")
    return methods


def launched_as(wanted: str | None) -> TargetUser:
    """Who a program tapbench launches runs as (--user, else whoever invoked tapbench), refused
    now, in one line, if tapbench cannot switch to that user."""
    user = TargetUser.resolve(wanted)
    user.check_can_switch()
    return user


OPPONENT_OPTIONS = {"target": None, "moves": "100000", "rate": "0", "goroutines": "1", "seed": "1", "noise": "0"}
PROGRAM_OPTIONS = ("fd", "output", "timeout")


def command_run(args) -> int:
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
    (bench/program.py)."""
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


def move_decoder(pattern: str | None):
    """What counts as a move in a live watch of any opponent: by default the first whole word
    rock, paper or scissors in a write, any case; --pattern: the one group of a regex."""
    if pattern is None:
        return move_word
    try:
        compiled = re.compile(pattern.encode())
    except re.error as error:
        raise UsageError(f"--pattern is not a regular expression: {error}") from None
    if compiled.groups != 1:
        raise UsageError(f"--pattern needs exactly one group around the move, like 'played (\\w+)'; "
                         f"{pattern!r} has {compiled.groups}")

    def decode(raw: bytes) -> str | None:
        found = compiled.search(raw)
        return found.group(1).decode(errors="replace").lower() if found and found.group(1) else None

    return decode


def command_watch(args) -> int:
    if sum(bool(x) for x in (args.pid, args.name, args.cmd)) != 1:
        raise UsageError("give one of --pid PID, --name NAME or -- CMD ...")
    observer_class = REGISTRY[args.method]
    options = observer_options(args, args.method, [args.method])
    decode = move_decoder(args.pattern)
    wait_s = 0.0 if args.wait is None else seconds_arg(args.wait, "--wait", 86_400)
    if args.wait is not None and not args.name:
        raise UsageError("--wait applies to --name only")
    if args.user is not None and not args.cmd:
        raise UsageError("--user applies to a launched command (-- CMD ...): an attached process runs as it runs")
    placement = args.placement or observer_class.default_placement
    # Live, a move at a time: the backend's live defaults (a consumer woken, not polled; in
    # split, spinning before it sleeps), for every option the user did not choose.
    # --ebpf prints the C as bcc compiles it: not what the CO-RE loader loads.
    preferred = {} if args.ebpf else observer_class.watch_options()
    for name, value in (observer_class.live_options_for(placement) | preferred).items():
        if getattr(args, name, None) is None:
            options[name] = value
    attaching = bool(args.pid or args.name)
    if attaching and not args.ebpf and observer_class.attach_unavailable_reason():
        raise ObserverUnavailable(observer_class.attach_unavailable_reason())  # before any waiting
    if attaching:
        # A backend whose default cannot attach says which option can (ptrace: step).
        for name, value in observer_class.attach_options.items():
            if getattr(args, name, None) is None and options.get(name) != value:
                options[name] = value
                print(f"note: {args.method} attaches with --{name.replace('_', '-')} {value} "
                      f"(its default cannot attach to a running process)", file=sys.stderr)
    pid = None
    if args.pid:
        pid = positive_int(args.pid, "--pid", 2**22)
        if args.ebpf:  # the program as it would be loaded for that PID; nothing is attached
            return print_program(args.method, pid, options)
        process_name = check_pid(pid).name()
        if not is_opponent(process_name):
            print(f"note: PID {pid} ({process_name}) is not tapbench's opponent: a write is a move when it "
                  f"holds rock, paper or scissors (or --pattern)", file=sys.stderr)
    elif args.name:
        # A mechanism that can be in place before the program starts catches it at exec, from
        # its first write; the others poll /proc and say how late they came.
        catch_at_exec = observer_class.can_catch_exec and wait_s > 0 and watch_module.running(args.name) is None
        if not catch_at_exec:
            pid = watch_module.wait_for_name(args.name, wait_s)
            print(f"attaching to PID {pid} ({args.name})", file=sys.stderr)
    if args.ebpf:
        return print_program(args.method, pid or 0, options)
    return watch_module.watch(observer_class, options, placement, pid=pid, name=args.name, wait_s=wait_s,
                              cmd=args.cmd, decode=decode, raw=args.raw,
                              user=launched_as(args.user) if args.cmd else None)


def command_bench(args) -> int:
    default_repeats = sweep_module.QUICK_REPEATS if args.quick else sweep_module.FULL_REPEATS
    repeats = positive_int(args.repeats or str(default_repeats), "--repeats", 1000)
    out = Path(args.out)
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


def command_report(args) -> int:
    results = Path(args.results)
    written = write_reports(results, Path(args.json) if args.json else None, Path(args.out) if args.out else None)
    print(f"regenerated: {', '.join(str(p) for p in written)}")
    return 0


def command_merge(args) -> int:
    for line in store.merge(Path(args.results), args.sources):
        print(f"merged {line}")
    write_reports(Path(args.results))
    return 0


def command_upgrade(args) -> int:
    plan = [(group.name, group.workload, group.lineup) for group in sweep_module.FULL_GROUPS + sweep_module.QUICK_GROUPS]
    for name in args.files:
        data = read_json(name)
        if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
            print(f"{name}: already results format {RESULTS_FORMAT}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise ResultsError(f"{name} is not a tapbench results file")
        upgrade_document(data, plan, sweep_module.PRIMARY_GROUPS).write(name)
        print(f"{name}: results format {data['format']} -> {RESULTS_FORMAT}")
    return 0


def command_compare(args) -> int:
    changes, warnings = compare_module.compare_documents(Document.load(args.old), Document.load(args.new),
                                                         args.threshold, args.alpha)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(compare_module.changes_table(changes))
    return 0


def command_gate(args) -> int:
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


def command_duel(args) -> int:
    methods = parse_methods(args.method, sorted(name for name, cls in REGISTRY.items() if not cls.baseline))
    try:
        deadlines = sorted({float(d) for d in args.deadline_us.split(",") if d.strip()})
    except ValueError:
        raise UsageError(f"--deadline-us takes numbers of µs, comma-separated; got {args.deadline_us!r}") from None
    if not deadlines or deadlines[0] <= 0:
        raise UsageError("--deadline-us needs at least one deadline above 0")
    moves = positive_int(args.moves, "--moves", 10_000_000)
    rate = positive_int(args.rate, "--rate", MAX_RATE)
    target = args.target or target_seen_by_all(methods) or "go"
    duels = []
    for method in methods:
        cls = REGISTRY[method]
        placement = args.placement or cls.default_placement
        options = {name: spec.get("default") for name, spec in cls.cli_options.items()} | \
            cls.live_options_for(placement) | cls.watch_options()
        reason = cls.unavailable_reason(**options)
        if reason:
            raise ObserverUnavailable(f"{method} unavailable: {reason}")
        progress(f"duel: {method} ({placement})")
        duels.append(duel_module.duel(method, options, Workload(target, moves, rate=rate, placement=placement),
                                      deadlines))
    document = make_document([], duels=duels)
    print(report_module.duel_table(document, fmt="simple"))
    if args.json:
        document.write(args.json)
        print(f"results written to {args.json}")
    return 0


def command_cleanup(args) -> int:
    if cleanup.clean() == 0:
        print("cleanup: nothing left behind")
    return 0


COMMANDS = {"run": command_run, "watch": command_watch, "bench": command_bench, "sweep": command_bench,
            "report": command_report, "cleanup": command_cleanup, "compare": command_compare,
            "gate": command_gate, "merge": command_merge, "duel": command_duel, "upgrade": command_upgrade,
            "kernels": kernels_module.command}


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.command in ("run", "watch", "bench", "sweep", "duel") and os.geteuid() == 0:
        # Leftovers of a killed run first, said on stderr; silent when there are none.
        cleanup.clean(report=lambda line: print(line, file=sys.stderr))
    try:
        return COMMANDS[args.command](args)
    except ObserverUnavailable as error:
        print(f"ERROR: {error}", file=sys.stderr)
    except (UsageError, ObserverError, TargetMissing, ResultsError, TruthMismatch,
            PlacementNotApplicable) as error:
        print(f"ERROR: {error}", file=sys.stderr)
    except (TargetFailed, ab_module.GateError) as error:  # a gate that cannot judge fails closed
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
