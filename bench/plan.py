"""What `make bench` measures, as data: the groups of rows and the probes, derived from what
every registered technique declares (methods/spec.py SweepSpec). `tapbench sweep --plan`
prints it without measuring anything.

Groups are curated where they compare techniques on purpose (eBPF's hooks and wakeups, the
in-process hooks beside preload and ptrace, the tracers ...); a technique that no curated group
holds gets a group of its own (beside its floor, if it can count) and a live run, so a new file
in methods/ is measured with no edit here. A probe applies to every technique it can run
against (attach: those that can attach ...), plus the variants a technique names for it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from bench.probes import PROBES
from bench.run.targets import Workload
from methods import REGISTRY
from methods.options import LIVE_SPIN_US
from methods.spec import FEW_MOVES, MANY_MOVES

PACED = 20_000  # moves/s: the article's "20k events/s on one core"
BENCH_MOVES, TRACER_MOVES = MANY_MOVES, FEW_MOVES


def variant(method: str, **changes) -> tuple[str, dict]:
    """A technique's sweep variant (its SweepSpec options), with changes."""
    return method, REGISTRY[method].sweep.options | changes


def floor_of(measured: tuple[str, dict]) -> tuple[str, dict]:
    """The same method and options, only counting (--capture count): its mechanism's floor."""
    method, options = measured
    return method, options | {"capture": "count"}


def live_of(measured: tuple[str, dict], placement: str) -> tuple[str, dict]:
    """What watch runs in that placement: the live options (a consumer woken, and in split a
    spin before each sleep) and the loader watch picks."""
    method, options = measured
    cls = REGISTRY[method]
    return method, options | cls.live_options_for(placement) | cls.watch_options()


EBPF_RAW = variant("ebpf")
EBPF_ADAPTIVE = variant("ebpf", wakeup="adaptive")
EBPF_TRACEPOINT = variant("ebpf", hook="tracepoint")
EBPF_CORE = variant("ebpf", loader="core")  # the object make built, loaded by libbpf, beside bcc's
EBPF_EXEC = variant("ebpf", match="exec")  # its target found through the map watch --name --wait fills
# What watch runs live (Observer.live_options_for, Observer.watch_options), written out: the
# row keys of stored sweeps name them so.
EBPF_LIVE = ("ebpf", EBPF_ADAPTIVE[1] | {"spin_us": LIVE_SPIN_US, "loader": "core"})
PRELOAD = variant("preload")
PRELOAD_ADAPTIVE = variant("preload", wakeup="adaptive")
PRELOAD_LIVE = variant("preload", wakeup="adaptive", spin_us=LIVE_SPIN_US)
ZPOLINE, SUD = variant("zpoline"), variant("sud")
ZPOLINE_LIVE = variant("zpoline", wakeup="adaptive", spin_us=LIVE_SPIN_US)
SUD_LIVE = variant("sud", wakeup="adaptive", spin_us=LIVE_SPIN_US)
PTRACE_SECCOMP, PTRACE_STEP = variant("ptrace"), variant("ptrace", strategy="step")
# split only: the tracer polls waitpid for 100 µs before sleeping in it (a flat-out stop comes
# back within ~40 µs here), so most stops need no wake-up of its CPU
PTRACE_SPIN = variant("ptrace", spin_us=100)
STRACE, STRACE_SECCOMP = variant("strace"), variant("strace", seccomp_bpf=True)
BPFTRACE = variant("bpftrace")
# the uprobe's independent peer: bpftrace's own uprobe on syscall.write, only counting
BPFTRACE_UPROBE = variant("bpftrace", probe="uprobe", capture="count")
UNOTIFY, UPROBE = variant("unotify"), variant("uprobe")
UPROBE_LIVE = variant("uprobe", wakeup="adaptive", spin_us=LIVE_SPIN_US)


@dataclass(frozen=True)
class Group:
    """Methods run interleaved on one workload, against the same bare runs; each is compared
    with the group's last one as a same-run ratio. Its name is part of every row's identity."""

    name: str
    workload: Workload
    lineup: list


CURATED_GROUPS = [
    # each backend beside its floor (the same mechanism, only counting), against the same bare runs;
    # both eBPF hooks and both wakeup policies, so that the defaults stay justified by numbers
    Group("ebpf", Workload("go", BENCH_MOVES), [EBPF_RAW, floor_of(EBPF_RAW), EBPF_EXEC, EBPF_ADAPTIVE,
                                                EBPF_TRACEPOINT, floor_of(EBPF_TRACEPOINT), EBPF_CORE]),
    Group("ebpf, 8 writers", Workload("go", BENCH_MOVES, goroutines=8), [EBPF_RAW]),
    # a uprobe traps on every call: fewer moves; beside its floor, an independent uprobe
    # (bpftrace's, count only) pays the mechanism's cost per call in the same run
    Group("uprobe", Workload("go", TRACER_MOVES), [UPROBE, floor_of(UPROBE), BPFTRACE_UPROBE, EBPF_RAW]),
    Group("uprobe, 8 writers", Workload("go", TRACER_MOVES, goroutines=8), [UPROBE]),
    Group("uprobe on cgo", Workload("cgo", TRACER_MOVES), [UPROBE]),
    Group("uprobe on libc", Workload("libc", 10_000), [UPROBE]),  # a finding: libc's write() never calls syscall.write
    Group("preload", Workload("libc", BENCH_MOVES), [PRELOAD, floor_of(PRELOAD), EBPF_RAW]),
    Group("preload, 8 writers", Workload("libc", BENCH_MOVES, goroutines=8), [PRELOAD, floor_of(PRELOAD)]),
    Group("preload on go", Workload("go", 10_000), [PRELOAD]),  # a finding: static binary
    Group("preload on cgo", Workload("cgo", 10_000), [PRELOAD]),  # a finding: no write() through libc
    # the in-process exhaustive hooks (zpoline, SUD) beside preload where all three see the
    # writes (libc), and on Go's raw system calls beside ptrace, the cheapest exhaustive
    # technique that stops the target; each with its floor
    Group("zpoline", Workload("libc", BENCH_MOVES), [ZPOLINE, floor_of(ZPOLINE), SUD, floor_of(SUD), PRELOAD]),
    Group("zpoline on cgo", Workload("cgo", TRACER_MOVES), [ZPOLINE, floor_of(ZPOLINE), SUD, floor_of(SUD),
                                                            PTRACE_SECCOMP]),
    Group("zpoline on go", Workload("go", 10_000), [ZPOLINE, SUD]),  # a finding: static binary
    # bpftrace's consumer is slow (tens of µs of CPU per event): fewer moves
    Group("bpftrace", Workload("go", TRACER_MOVES), [EBPF_RAW, EBPF_TRACEPOINT, BPFTRACE]),
    Group("tracers", Workload("go", TRACER_MOVES), [UNOTIFY, PTRACE_SECCOMP, PTRACE_STEP, STRACE_SECCOMP, STRACE]),
    Group("tracers, 8 writers", Workload("go", TRACER_MOVES, goroutines=8), [UNOTIFY, PTRACE_SECCOMP, STRACE]),
    # the tracer on a CPU of its own, spinning for its stops rather than sleeping (split only)
    Group("tracers spinning", Workload("go", TRACER_MOVES, placement="split"), [PTRACE_SECCOMP, PTRACE_SPIN, STRACE]),
    # seccomp user notification against ptrace's seccomp stops, each beside its floor, same run
    Group("seccomp", Workload("go", TRACER_MOVES // 2), [UNOTIFY, floor_of(UNOTIFY), PTRACE_SECCOMP,
                                                         floor_of(PTRACE_SECCOMP)]),
    Group("unotify on cgo", Workload("cgo", TRACER_MOVES // 2), [UNOTIFY]),
    # latency at the article's rate, every move stamped: a p99 from 20,000 samples a run
    Group("paced", Workload("go", PACED, rate=PACED, stamp_every=1), [EBPF_RAW, EBPF_ADAPTIVE, UPROBE, UNOTIFY,
                                                                      PTRACE_SECCOMP, STRACE, BPFTRACE]),
    Group("paced on libc", Workload("libc", PACED, rate=PACED, stamp_every=1), [PRELOAD, PRELOAD_ADAPTIVE, ZPOLINE]),
    # the same, live as watch runs it in split placement (the consumer spins on a CPU of its own)
    Group("live", Workload("go", PACED, rate=PACED, stamp_every=1, placement="split"), [EBPF_LIVE, UPROBE_LIVE]),
    Group("live on libc", Workload("libc", PACED, rate=PACED, stamp_every=1, placement="split"), [PRELOAD_LIVE]),
    Group("live on cgo", Workload("cgo", PACED, rate=PACED, stamp_every=1, placement="split"), [ZPOLINE_LIVE, SUD_LIVE]),
]


def techniques() -> list:
    """Every registered technique the sweep measures (the baseline is each group's bare run)."""
    return [cls for _, cls in sorted(REGISTRY.items()) if not cls.baseline]


def own_groups() -> list[Group]:
    """A group, and a live run, for each technique no curated group holds: its sweep variant
    beside its floor (if it can count) on the first target it sees, and what watch runs, paced."""
    curated = {method for group in CURATED_GROUPS for method, _ in group.lineup}
    groups = []
    for cls in techniques():
        if cls.method in curated:
            continue
        own = variant(cls.method)
        lineup = [own, floor_of(own)] if "capture" in cls.cli_options else [own]
        groups.append(Group(cls.method, Workload(cls.targets[0], cls.sweep.moves), lineup))
        placement = cls.default_placement if cls.default_placement != "free" else "shared"
        groups.append(Group(f"{cls.method} live", Workload(cls.targets[0], PACED, rate=PACED, stamp_every=1,
                                                           placement=placement), [live_of(own, placement)]))
    return groups


def full_groups() -> list[Group]:
    return CURATED_GROUPS + own_groups()


def primary_groups() -> dict[str, str]:
    """The selection rule, fixed before anything is measured: the group each technique's
    headline row comes from (bench/document/headline.py): the one it declares if that group
    measures it (a technique inherits its parent's declaration, not its parent's place in the
    curated groups), else its own."""
    holds = {group.name: {method for method, _ in group.lineup} for group in full_groups()}
    return {cls.method: cls.sweep.primary_group if cls.method in holds.get(cls.sweep.primary_group, ()) else cls.method
            for cls in techniques()}


# The gate's sweep: more, shorter repeats than the full one, for the statistical power of its
# Mann-Whitney test (9 against 9 can reach p < 0.01 with room to spare; 5 against 5 barely).
QUICK_GROUPS = [
    Group("ebpf", Workload("go", 50_000), [EBPF_RAW, floor_of(EBPF_RAW)]),
    Group("preload", Workload("libc", 50_000), [PRELOAD]),
    Group("tracers", Workload("go", 3_000), [UNOTIFY, PTRACE_SECCOMP, floor_of(PTRACE_SECCOMP), STRACE]),
]


def gate_rows() -> list[tuple[str, dict, str, int]]:
    """The techniques the regression gate measures (tapbench gate), each in its default variant
    on the first target it sees, flat out: every technique of ours (peers are not ours to gate)."""
    return [(cls.method, {}, cls.targets[0], cls.sweep.gate_moves) for cls in techniques() if not cls.reference_peer]


def placed(groups: list[Group], placements: tuple[str, ...]) -> list[Group]:
    """Each group in each placement; a group whose workload names a placement runs in that one only."""
    return [replace(group, workload=replace(group.workload, placement=p))
            for group in groups for p in placements if group.workload.placement in ("free", p)]


def label(method: str, options: dict) -> str:
    shown = ", ".join(f"{name}={value}" for name, value in options.items())
    return f"{method} ({shown})" if shown else method


def describe(quick: bool, placements: tuple[str, ...], repeats: int, unavailable) -> list[str]:
    """The plan in words, measuring nothing: each group with its rows and how many runs it
    makes, each probe with the variants it measures. unavailable(method, options): why that
    variant cannot run here, or None (it is listed, and said to be skipped)."""
    groups = placed(QUICK_GROUPS if quick else full_groups(), placements)
    runs = sum((len(group.lineup) + 1) * repeats for group in groups)
    lines = [f"{'quick' if quick else 'full'} sweep, placements {', '.join(placements)}, {repeats} repeats: "
             f"{len(groups)} groups, {runs} runs (each row beside its group's bare run, interleaved)", ""]
    for group in groups:
        lines.append(f"group {group.name!r}: {group.workload.label()}")
        lines += [f"  {label(method, options)}" + (f"  [skipped here: {why}]" if (why := unavailable(method, options))
                                                    else "") for method, options in group.lineup]
    if quick:
        return lines
    lines += ["", "primary groups (the headline's rows): "
                  + ", ".join(f"{method} in {group!r}" for method, group in primary_groups().items()), ""]
    for probe in PROBES:
        lineup = probe.lineup()
        lines.append(f"probe {probe.name} ({probe.what}): " + (", ".join(
            label(method, options) + (" [skipped here]" if unavailable(method, options) else "")
            for method, options in lineup) or "once"))
    return lines
