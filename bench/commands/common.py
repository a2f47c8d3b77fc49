"""What the commands share: user errors, bounded numbers, a technique's options as flags, and
the help texts several commands use."""
from __future__ import annotations

import argparse
import sys

from bench.run.targets import ROOT
from methods import REGISTRY
from methods._kernel.process import TargetUser

RESULTS_DIR = ROOT / "results"
MAX_MOVES = 100_000_000
MAX_RATE = 10_000_000
PLACEMENT_HELP = ("shared: target and observer on one CPU; split: target on one CPU, observer on the "
                  "others; free: the scheduler decides")
USER_HELP = ("run the launched program as this user (a name or a number); default: the user who invoked "
             "tapbench (under sudo, SUDO_UID), never root unless asked for with --user root")


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
        spec.pop("label", None)  # for result labels (bench/run/results.py), not argparse
        help_text = spec.pop("help", "") + (f" (default {default})" if default not in (None, False) else "")
        if spec.pop("flag", False):
            spec.update(action="store_const", const=True)
        groups[tuple(owners)].add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                                           help=help_text, **spec)
    # Like bcc tools: print the program the method would load (BPF C, a bpftrace script), exit.
    parser.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)


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
