"""`tapbench watch`: the moves live, of a launched command or a running process."""
from __future__ import annotations

import re
import sys

from bench.run import watch as watch_module
from bench.commands.common import PLACEMENT_HELP, USER_HELP, UsageError, add_method_arguments, launched_as, observer_options, positive_int, print_program, seconds_arg
from bench.run.placement import PLACEMENTS
from bench.run.targets import OPPONENT_NAME, is_opponent
from methods import ObserverUnavailable, REGISTRY
from methods.protocol import move_word
from methods._kernel.process import check_pid

def add_parser(commands) -> None:
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
                       help=PLACEMENT_HELP + " (default: the method's own, the one measured cheaper for it)")
    watch.add_argument("--user", help=USER_HELP)
    watch.add_argument("cmd", nargs="*", help="or launch this command under observation (after --)")
    watch.set_defaults(handler=run)


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


def run(args) -> int:
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
