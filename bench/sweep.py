"""The sweeps behind `make bench` (full) and `tapbench sweep --quick` (CI): what is measured,
in which groups, and in which order. Every number in results/ comes from here.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.bystander import bystander_cost
from bench.duel import DEFAULT_DEADLINES_US, duel
from bench.ceiling import SEARCHES, find_ceiling_repeated, unobserved_maximum
from bench.latency_floor import FLOOR_REPEATS, pipe_latency_repeated
from bench.dependence import cold_starts, core_without_headers
from bench.hostile import hostile_target_probe
from bench.intrusion import attach_startup, least_privilege, missed_after_exec, sigkill_fate
from bench.results import Row, add_floor_ratios, document_of, label_of, load_document, metadata, summarize
from bench.store import store_quick
from bench.placement import split_applicable
from bench.profile import bpf_profile
from bench.runner import compare
from bench.stats import median_interval, per_repeat_ratios
from bench.targets import Workload
from methods import REGISTRY, ObserverError
from methods.base import LIVE_SPIN_US

EBPF_RAW = ("ebpf", {"hook": "raw", "wakeup": "poll"})
EBPF_ADAPTIVE = ("ebpf", {"hook": "raw", "wakeup": "adaptive"})
EBPF_TRACEPOINT = ("ebpf", {"hook": "tracepoint", "wakeup": "poll"})
# the same program loaded by libbpf from the object make built (CO-RE), beside bcc's
EBPF_CORE = ("ebpf", {"hook": "raw", "wakeup": "poll", "loader": "core"})
# the raw hook finding its target through the map that watch --name --wait fills at exec
EBPF_EXEC = ("ebpf", {"hook": "raw", "wakeup": "poll", "match": "exec"})
PRELOAD = ("preload", {"ring_slots": 1 << 20})
PRELOAD_ADAPTIVE = ("preload", {"ring_slots": 1 << 20, "wakeup": "adaptive"})
# every system call rewritten into a call to the hook, in the target (the preload ring)
ZPOLINE = ("zpoline", {"ring_slots": 1 << 20})
# every system call a SIGSYS in the target, whose handler enters the same hook (Syscall User Dispatch)
SUD = ("sud", {"ring_slots": 1 << 20})
# What watch runs in split placement (Observer.live_options_for): woken, spinning before a sleep;
# eBPF with the loader watch uses (Observer.watch_options: CO-RE), so that the headline's live
# p99 is what a user of watch gets
EBPF_LIVE = ("ebpf", EBPF_ADAPTIVE[1] | {"spin_us": LIVE_SPIN_US, "loader": "core"})
PRELOAD_LIVE = ("preload", PRELOAD_ADAPTIVE[1] | {"spin_us": LIVE_SPIN_US})
UPROBE_LIVE = ("uprobe", {"wakeup": "adaptive", "spin_us": LIVE_SPIN_US})
ZPOLINE_LIVE = ("zpoline", {"ring_slots": 1 << 20, "wakeup": "adaptive", "spin_us": LIVE_SPIN_US})
SUD_LIVE = ("sud", {"ring_slots": 1 << 20, "wakeup": "adaptive", "spin_us": LIVE_SPIN_US})
PTRACE_SECCOMP = ("ptrace", {"strategy": "seccomp", "exitkill": False})
PTRACE_STEP = ("ptrace", {"strategy": "step", "exitkill": False})
# split only: the tracer polls waitpid for 100 µs before sleeping in it (a flat-out stop comes
# back within ~40 µs here), so most stops need no wake-up of its CPU
PTRACE_SPIN = ("ptrace", {"strategy": "seccomp", "exitkill": False, "spin_us": 100})
STRACE = ("strace", {"seccomp_bpf": False})
STRACE_SECCOMP = ("strace", {"seccomp_bpf": True})
BPFTRACE = ("bpftrace", {})
# the uprobe's independent peer: bpftrace's own uprobe on syscall.write, only counting
BPFTRACE_UPROBE = ("bpftrace", {"probe": "uprobe", "capture": "count"})
UNOTIFY = ("unotify", {})
UPROBE = ("uprobe", {"wakeup": "poll"})


def floor_of(variant: tuple[str, dict]) -> tuple[str, dict]:
    """The same method and options, only counting (--capture count): its mechanism's floor."""
    method, options = variant
    return method, options | {"capture": "count"}

# Groups of methods run interleaved on one workload; within a group every method is also
# compared with the group's last one as a same-run ratio. Both eBPF hooks and both wakeup
# policies are measured so that the defaults stay justified by numbers. A group's name is part
# of every row's identity: one configuration measured in two groups is two rows.
BENCH_MOVES = 200_000
TRACER_MOVES = 20_000  # tracers stop the target at every write: fewer moves keep it short
PACED = 20_000  # moves/s: the article's "20k events/s on one core"


@dataclass(frozen=True)
class Group:
    name: str
    workload: Workload
    lineup: list


FULL_GROUPS = [
    # each backend beside its floor (the same mechanism, only counting), against the same bare runs
    Group("ebpf", Workload("go", BENCH_MOVES), [EBPF_RAW, floor_of(EBPF_RAW), EBPF_EXEC, EBPF_ADAPTIVE,
                                                EBPF_TRACEPOINT, floor_of(EBPF_TRACEPOINT), EBPF_CORE]),
    Group("ebpf, 8 writers", Workload("go", BENCH_MOVES, goroutines=8), [EBPF_RAW]),
    # a uprobe traps on every call: fewer moves; beside its floor, an independent uprobe
    # (bpftrace's, count only) pays the mechanism's cost per call in the same run
    Group("uprobe", Workload("go", TRACER_MOVES), [UPROBE, floor_of(UPROBE), BPFTRACE_UPROBE, EBPF_RAW]),
    Group("uprobe, 8 writers", Workload("go", TRACER_MOVES, goroutines=8), [UPROBE]),
    Group("uprobe on cgo", Workload("cgo", TRACER_MOVES), [UPROBE]),
    # a finding: libc's write() never calls syscall.write
    Group("uprobe on libc", Workload("libc", 10_000), [UPROBE]),
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
    # latency at the article's rate, every move stamped: a p99 from 20,000 samples a run, not
    # 313 (a tail of host noise moved it by 2x between sweeps with every 64th stamped)
    Group("paced", Workload("go", PACED, rate=PACED, stamp_every=1), [EBPF_RAW, EBPF_ADAPTIVE, UPROBE, UNOTIFY,
                                                                      PTRACE_SECCOMP, STRACE, BPFTRACE]),
    Group("paced on libc", Workload("libc", PACED, rate=PACED, stamp_every=1), [PRELOAD, PRELOAD_ADAPTIVE, ZPOLINE]),
    # the same, live as watch runs it in split placement (the consumer spins on a CPU of its own)
    Group("live", Workload("go", PACED, rate=PACED, stamp_every=1, placement="split"), [EBPF_LIVE, UPROBE_LIVE]),
    Group("live on libc", Workload("libc", PACED, rate=PACED, stamp_every=1, placement="split"), [PRELOAD_LIVE]),
    Group("live on cgo", Workload("cgo", PACED, rate=PACED, stamp_every=1, placement="split"), [ZPOLINE_LIVE, SUD_LIVE]),
]
# The selection rule, fixed before anything is measured: the group each technique's headline
# row comes from (the one it runs beside its floor, where it has one). From that group the
# headline takes the technique's default variant, one writer, flat out, in its default
# placement, and names the other placement's row beside it (bench/document/headline.py).
PRIMARY_GROUPS = {"ebpf": "ebpf", "preload": "preload", "uprobe": "uprobe", "ptrace": "seccomp",
                  "unotify": "seccomp", "strace": "tracers", "bpftrace": "bpftrace", "zpoline": "zpoline on cgo",
                  "sud": "zpoline on cgo"}
if not set(PRIMARY_GROUPS.values()) <= {group.name for group in FULL_GROUPS}:
    raise RuntimeError("PRIMARY_GROUPS names a group the full sweep does not run")
# The gate's sweep: more, shorter repeats than the full one, for the statistical power of its
# Mann-Whitney test (9 against 9 can reach p < 0.01 with room to spare; 5 against 5 barely).
# Not much shorter: a bare run of 10,000 moves lasts 3 ms, and its spread swamps the ratio.
QUICK_GROUPS = [
    Group("ebpf", Workload("go", 50_000), [EBPF_RAW, floor_of(EBPF_RAW)]),
    Group("preload", Workload("libc", 50_000), [PRELOAD]),
    Group("tracers", Workload("go", 3_000), [UNOTIFY, PTRACE_SECCOMP, floor_of(PTRACE_SECCOMP), STRACE]),
]
FULL_REPEATS, QUICK_REPEATS = 5, 9
# Repeats chosen from the measured spread, as pyperf calibrates its runs: once every group has
# run, the flat-out group holding the row whose slowdown is least pinned down (the widest 95 %
# interval, relative to the slowdown) runs EXTRA_ROUND more repeats, and again, while that
# interval is wider than WIDE_INTERVAL each side, the group has fewer than MAX_REPEATS_FACTOR
# times the sweep's repeats, and the extra rounds have taken less than EXTRA_BUDGET_S (the full
# sweep stays within 20 minutes). A slowdown under SETTLED_BELOW is not judged: its relative
# interval divides by a number near zero.
EXTRA_ROUND, MAX_REPEATS_FACTOR, EXTRA_BUDGET_S = 3, 2, 150.0
WIDE_INTERVAL, SETTLED_BELOW = 0.05, 0.10
FULL_PLACEMENTS, QUICK_PLACEMENTS = ("shared", "split"), ("shared",)
CEILINGS = [(EBPF_RAW, "go"), (UPROBE, "go"), (PRELOAD, "libc"), (ZPOLINE, "cgo"), (SUD, "cgo"), (UNOTIFY, "go"),
            (PTRACE_SECCOMP, "go"), (STRACE, "go"), (BPFTRACE, "go")]
ATTACHES = [EBPF_RAW, EBPF_CORE, UPROBE, ("ptrace", {"strategy": "step", "exitkill": False}), STRACE, BPFTRACE]
PRIVILEGES = [EBPF_RAW, EBPF_TRACEPOINT, EBPF_CORE, UPROBE, UNOTIFY, PTRACE_SECCOMP, PTRACE_STEP, PRELOAD, ZPOLINE,
              SUD, STRACE, BPFTRACE]
# A first start in a new process: both eBPF loaders, and bpftrace, which compiles at every start.
COLD_STARTS = [EBPF_RAW, EBPF_CORE, BPFTRACE]
ATTACH_PRIVILEGES = ATTACHES
SIGKILLS = [EBPF_RAW, UPROBE, ("ptrace", {"strategy": "step", "exitkill": False}),
            ("ptrace", {"strategy": "step", "exitkill": True}), UNOTIFY, PRELOAD, ZPOLINE, SUD, STRACE, BPFTRACE]
# (method, who the bystander is): see bench/bystander.py
BYSTANDERS = [(EBPF_RAW, "copy"), (EBPF_RAW, "other"), (EBPF_TRACEPOINT, "copy"), (UPROBE, "copy"),
              (UPROBE, "other"), (UNOTIFY, "copy"), (PTRACE_SECCOMP, "copy"), (PRELOAD, "copy"),
              (BPFTRACE, "copy")]
# What a hostile target can do to each technique's observer (bench/hostile.py).
HOSTILE = [EBPF_RAW, UPROBE, PRELOAD, ZPOLINE, SUD, UNOTIFY, PTRACE_SECCOMP, STRACE, BPFTRACE]
# The duel: a move a millisecond, every move stamped; each technique in its live settings.
DUELISTS = [EBPF_RAW, UPROBE, PRELOAD, ZPOLINE, SUD, UNOTIFY, PTRACE_SECCOMP, STRACE, BPFTRACE]
DUEL_MOVES, DUEL_RATE = 3000, 1000
# Where the BPF backends' time goes (bench/profile.py): each variant once with the kernel timing
# its programs, including the eBPF hook that finds its target at exec (a map lookup per write).
PROFILED = [EBPF_RAW, floor_of(EBPF_RAW), EBPF_EXEC, EBPF_TRACEPOINT,
            floor_of(EBPF_TRACEPOINT), UPROBE, floor_of(UPROBE)]
PROFILE_MOVES = {"ebpf": BENCH_MOVES, "uprobe": TRACER_MOVES}
CEILING_PROBES_GUESS = 18  # for the progress bar's ETA only: ramp, confirmed bisection, control


class Progress:
    """A rich progress bar with ETA on stderr when it is a terminal; one line per phase
    otherwise (quiet enough for CI logs)."""

    def __init__(self, total: int):
        self.interactive = sys.stderr.isatty()
        # Where the sweep's wall time goes, by kind of phase: what to shorten when it is long.
        self.seconds: dict[str, float] = {}
        self._kind: str | None = None
        self._since = 0.0
        if self.interactive:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task("sweep", total=total)
            self._bar.start()

    def phase(self, text: str, kind: str) -> None:
        """A new phase begins; kind: what it measures, under which its wall time is summed."""
        self._end_phase()
        self._kind = kind
        if self.interactive:
            self._bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def step(self, text: str) -> None:
        if self.interactive:
            self._bar.update(self._task, advance=1, description=text[:60])

    def _end_phase(self) -> None:
        now = time.monotonic()
        if self._kind is not None:
            self.seconds[self._kind] = self.seconds.get(self._kind, 0.0) + now - self._since
        self._kind, self._since = None, now

    def close(self) -> None:
        self._end_phase()
        if self.interactive:
            self._bar.stop()


def available(lineup, skipped: list[dict]):
    """The methods of lineup that can run here; the others are recorded once with a reason."""
    result = []
    for method, options in lineup:
        reason = REGISTRY[method].unavailable_reason(**options)
        if reason is None:
            result.append((method, options))
        elif not any(s["method"] == method and s.get("options", {}) == options for s in skipped):
            skipped.append({"method": method, "options": options, "reason": reason})
    return result


def same_run_ratios(rows: list[Row]) -> list[dict]:
    """Each method's per-move overhead over the last method's, repeat by repeat: the ratio a
    noisy machine cannot fake, since both sides ran next to the same bare run."""
    rows = [r for r in rows if r.capture != "count"]  # floors have their own column
    if len(rows) < 2 or REGISTRY[rows[-1].method].baseline:  # no overhead to divide by
        return []
    baseline = rows[-1]
    base = np.array(baseline.samples_observed_ns_per_move) - np.array(baseline.samples_bare_ns_per_move)
    comparisons = []
    for row in rows[:-1]:
        mine = np.array(row.samples_observed_ns_per_move) - np.array(row.samples_bare_ns_per_move)
        samples = (mine / base).tolist()
        ratio, low, high = median_interval(samples)
        comparisons.append({"method": label_of(row.method, row.options),
                            "baseline": label_of(baseline.method, baseline.options),
                            "group": row.group, "ratio": ratio, "ci": [low, high], "samples": samples})
    return comparisons


def swept_placements(quick: bool, only: str | None = None) -> tuple[str, ...]:
    """Every method is measured shared (the article's one core) and split; the quick sweep,
    which must stay short, shared only. Split needs two CPUs."""
    wanted = (only,) if only else (QUICK_PLACEMENTS if quick else FULL_PLACEMENTS)
    return tuple(p for p in wanted if p != "split" or split_applicable())


def sweep(quick: bool, repeats: int, placement: str | None = None) -> dict:
    """Run a whole sweep; returns the results document's sections (see results.write_json)."""
    started = time.monotonic()
    skipped: list[dict] = []
    placements = swept_placements(quick, placement)
    # A group whose workload names a placement runs in that one only.
    groups = [replace(group, workload=replace(group.workload, placement=p))
              for group in (QUICK_GROUPS if quick else FULL_GROUPS) for p in placements
              if group.workload.placement in ("free", p)]
    total = sum((len(group.lineup) + 1) * repeats for group in groups)
    if not quick:
        total += len(CEILINGS) * len(placements) * CEILING_PROBES_GUESS * SEARCHES + len(ATTACHES) * 3 \
            + len(PRIVILEGES) + len(HOSTILE) + len(ATTACH_PRIVILEGES) + len(SIGKILLS) + len(BYSTANDERS) * 2 * repeats + len(DUELISTS) + len(ATTACHES) \
            + (FLOOR_REPEATS + 1) * len(placements)
    progress = Progress(total)
    sections: dict = {"runs": [], "comparisons": [], "skipped": skipped}
    if placement == "split" and "split" not in placements:
        skipped.append({"method": "(all)", "reason": "split placement needs two CPUs"})
    try:
        measured = []
        for group in groups:
            group.workload.binary()
            methods = available(group.lineup, skipped)
            if not methods:
                continue
            progress.phase(f"measuring {', '.join(m for m, _ in methods)} on {group.workload.label()} [{group.name}]",
                           "paced runs" if group.workload.rate else "flat-out runs")
            measured.append(MeasuredGroup(group.name, group.workload, methods,
                                          *compare(methods, group.workload, repeats, progress.step)))
        if not quick:
            repeat_the_least_settled(measured, repeats, progress)
        for group in measured:
            rows = [summarize(method, options, group.workload, group.bare, executions, group.name)
                    for (method, options), executions in zip(group.methods, group.observed)]
            add_floor_ratios(rows)
            sections["runs"] += rows
            if not group.workload.rate:  # paced, the overhead is ~0 and a ratio of two says nothing
                sections["comparisons"] += [c | {"workload": group.workload.label()} for c in same_run_ratios(rows)]
        if not quick:
            sections |= intrusiveness_and_limits(repeats, skipped, progress, placements)
    finally:
        progress.close()
    sections["meta"] = metadata() | {"wall_s": round(time.monotonic() - started, 1),
                                     "profile": "quick" if quick else "full", "repeats": repeats,
                                     "placements": list(placements),
                                     **({} if quick else {"primary_groups": PRIMARY_GROUPS}),
                                     "phase_s": {kind: round(s, 1) for kind, s in progress.seconds.items()}}
    return sections


@dataclass
class MeasuredGroup:
    name: str
    workload: Workload
    methods: list[tuple[str, dict]]
    bare: list
    observed: list[list]  # per method, its executions in repeat order, like bare


def least_settled_width(group: MeasuredGroup) -> float:
    """The widest 95 % interval of the group's slowdowns, each side, as a share of the slowdown;
    0 for a paced group and for slowdowns under SETTLED_BELOW."""
    if group.workload.rate:
        return 0.0
    bare_ns = [e.ns_per_move for e in group.bare]
    widths = [0.0]
    for executions in group.observed:
        ratio, low, high = median_interval(per_repeat_ratios([e.ns_per_move for e in executions], bare_ns))
        if abs(ratio) >= SETTLED_BELOW:
            widths.append(max(ratio - low, high - ratio) / abs(ratio))
    return max(widths)


def repeat_the_least_settled(measured: list[MeasuredGroup], repeats: int, progress: "Progress") -> None:
    """More repeats, EXTRA_ROUND at a time, for the flat-out group whose slowdowns are least
    pinned down, until each is narrow enough, has its most repeats, or the budget is spent."""
    started = time.monotonic()
    while time.monotonic() - started < EXTRA_BUDGET_S:
        # Each width is a bootstrap per row: computed once a round, not at every comparison.
        widths = [(least_settled_width(g), index) for index, g in enumerate(measured)
                  if len(g.bare) + EXTRA_ROUND <= MAX_REPEATS_FACTOR * repeats]
        width, index = max(widths, default=(0.0, None))
        if width <= WIDE_INTERVAL:
            return
        group = measured[index]
        progress.phase(f"{EXTRA_ROUND} more repeats of {', '.join(m for m, _ in group.methods)} on "
                       f"{group.workload.label()} (interval ±{width:.0%})", "extra repeats, from the spread")
        bare, observed = compare(group.methods, group.workload, EXTRA_ROUND, progress.step)
        group.bare += bare
        for executions, more in zip(group.observed, observed):
            executions += more


def profile_programs(placements: tuple[str, ...], skipped: list[dict], progress: Progress) -> list[dict]:
    """bench/profile.py for every BPF variant that can run here, in each placement."""
    profiled, profiles = available(PROFILED, skipped), []
    for placement in placements if profiled else ():
        progress.phase(f"timing the BPF programs, {placement}", "BPF program times")
        try:
            profiles.append(bpf_profile(profiled, {method: Workload("go", moves, placement=placement)
                                                   for method, moves in PROFILE_MOVES.items()})
                            | {"placement": placement})
        except ObserverError as error:  # the statistics need CAP_SYS_ADMIN, the backends less
            skipped.append({"method": "(BPF program times)", "reason": str(error)})
            break
        progress.step(f"BPF programs {placement}")
    return profiles


def intrusiveness_and_limits(repeats: int, skipped: list[dict], progress: Progress,
                             placements: tuple[str, ...]) -> dict:
    found: dict = {"ceilings": [], "attach": [], "privileges": [], "sigkill": [], "bystanders": [], "duels": [],
                   "exec": [], "bpf_profile": [], "latency_floor": [], "hostile": [], "dependence": [],
                   "cold_starts": []}
    progress.phase("the eBPF loaders with the kernel headers and bcc hidden", "kernel dependence")
    found["dependence"].append(core_without_headers())
    progress.phase("first starts in a new process", "cold starts")
    found["cold_starts"] = cold_starts(available(COLD_STARTS, skipped))
    for placement in placements:
        # the least live latency here: the opponent's stdout read from a pipe, every move stamped
        progress.phase(f"latency of a plain pipe reader, {placement}", "latency floor")
        found["latency_floor"].append(pipe_latency_repeated(Workload("go", PACED, rate=PACED, stamp_every=1,
                                                                     placement=placement)))
        progress.step(f"pipe latency {placement}")
    found["bpf_profile"] = profile_programs(placements, skipped, progress)
    maxima = {}
    for placement in placements:
        for (method, options), target in CEILINGS:
            if not available([(method, options)], skipped):
                continue
            if (target, placement) not in maxima:
                maxima[target, placement] = unobserved_maximum(target, placement)
            progress.phase(f"searching the throughput ceiling of {method} on {target}, {placement}", "ceilings")
            found["ceilings"].append(find_ceiling_repeated(method, options, target, maxima[target, placement],
                                                           progress.step, placement))
    probes = [(ATTACHES, "attach", attach_startup, "attaching {} {} to a running opponent"),
              (PRIVILEGES, "privileges", least_privilege, "least privilege of {} {} (launch)"),
              (ATTACH_PRIVILEGES, "privileges", partial(least_privilege, mode="attach"),
               "least privilege of {} {} (attach)"),
              (SIGKILLS, "sigkill", sigkill_fate, "SIGKILL of tapbench while {} {} watches"),
              (ATTACHES, "exec", missed_after_exec, "{} {} waiting for the opponent to start"),
              (HOSTILE, "hostile", hostile_target_probe, "a hostile target attacks {} {}")]
    for lineup, section, measure, text in probes:
        for method, options in available(lineup, skipped):
            progress.phase(text.format(method, options), section)
            found[section].append(measure(method, options))
            progress.step(f"{section} {method}")
    for method, options in available(DUELISTS, skipped):
        cls = REGISTRY[method]
        progress.phase(f"duel: the spy watches through {method}", "duels")
        live = options | cls.live_options_for(cls.default_placement) | cls.watch_options()  # as watch runs it
        found["duels"].append(duel(method, live, Workload(cls.targets[0], DUEL_MOVES, rate=DUEL_RATE,
                                                          placement=cls.default_placement), DEFAULT_DEADLINES_US))
        progress.step(f"duel {method}")
    for (method, options), kind in BYSTANDERS:
        if not available([(method, options)], skipped):
            continue
        progress.phase(f"measuring the bystander cost of {method} {options} ({kind})", "bystanders")
        found["bystanders"].append(bystander_cost(method, options, repeats=repeats,
                                                  progress=progress.step, kind=kind))
    return found


def inexact_rows(runs: list[Row]) -> tuple[list[Row], list[Row]]:
    """(our own rows that did not capture exactly: failures; reference peers' rows that did
    not: findings about those peers, reported but not failed)."""
    inexact = [r for r in runs if r.exact is False]
    peers = [r for r in inexact if REGISTRY[r.method].reference_peer]
    return [r for r in inexact if r not in peers], peers


def quick_sweep(out: Path, repeats: int = QUICK_REPEATS):
    """Run and store the quick sweep (results/quick.json); returns its document as stored."""
    return load_document(store_quick(out, document_of(sweep(True, repeats))))
