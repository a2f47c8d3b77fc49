"""`tapbench duel`: a spy answers the opponent's moves through a technique, judged by a referee."""
from __future__ import annotations

from bench.commands.common import MAX_RATE, UsageError, parse_methods, positive_int, progress
from bench.document import report as report_module
from bench.run.placement import PLACEMENTS
from bench.probes import duels as duel_module
from bench.run.results import make_document
from bench.run.targets import TARGETS, Workload, target_seen_by_all
from methods import ObserverUnavailable, REGISTRY

def add_parser(commands) -> None:
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
    duel.set_defaults(handler=run)


def run(args) -> int:
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
