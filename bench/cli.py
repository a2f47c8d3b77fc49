"""tapbench command line: run, watch, bench, report.

Examples:
  tapbench run --method ebpf --target go --moves 1000000 --json run.json
  tapbench run --method ebpf --hook tracepoint --goroutines 8 --moves 200000
  tapbench run --method ebpf,ptrace,preload -- dd if=/dev/zero bs=64 count=100000   # any program
  tapbench run --method ebpf,strace --fd 2 --repeats 7 -- python3 -c 'import sys; sys.stderr.write("x")'
  tapbench watch --method ebpf --name rock-paper-scissors
  tapbench watch --method ebpf -- gotargets/bin/rock-paper-scissors -moves 20 -rate 10
  tapbench bench            # what `make bench` runs: every available method, results/ rewritten
  tapbench sweep --plan     # what `make bench` will measure, and how long it should take, without measuring
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
import sys

from bench.gate import ab as ab_module
from bench.run import cleanup
from bench.commands import (bench, cleanup as cleanup_command, compare, duel, gate, merge, report, run, upgrade,
                            watch)
from bench.commands.common import UsageError
from bench.kernels import command as kernels
from bench.run.placement import PlacementNotApplicable
from bench.run.results import ResultsError
from bench.run.runner import TargetFailed
from bench.run.targets import TargetMissing
from bench.run.truth import TruthMismatch
from methods import ObserverError, ObserverUnavailable

# The commands, in the order --help lists them: each module adds its parser, which names the
# function that runs it (set_defaults(handler=...)). A new command is one module in bench/commands/.
COMMANDS = [run, watch, bench, duel, cleanup_command, compare, gate, report, upgrade, merge]
# Commands that start something on the machine: a killed run's leftovers are cleaned first.
CLEAN_FIRST = ("run", "watch", "bench", "sweep", "duel")


class Parser(argparse.ArgumentParser):
    """Bad arguments get one ERROR: line, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"ERROR: {message} (see {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tapbench", description=__doc__.split("\n")[0], epilog="\n".join(__doc__.split("\n")[1:]),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    kernels.add_parser(commands)  # a room of its own (bench/kernels/), with its own handler
    commands.choices["kernels"].set_defaults(handler=kernels.command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.command in CLEAN_FIRST and os.geteuid() == 0 and not getattr(args, "plan", False):
        # Leftovers of a killed run first, said on stderr; silent when there are none.
        cleanup.clean(report=lambda line: print(line, file=sys.stderr))
    try:
        return args.handler(args)
    except (ObserverUnavailable, UsageError, ObserverError, TargetMissing, ResultsError, TruthMismatch,
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
