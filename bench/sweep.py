"""The sweeps behind `make bench` (full) and `tapbench sweep --quick` (CI): the plan
(bench/plan.py) measured, group by group, then probe by probe (bench/probes/). Every number
in results/ comes from here.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import plan
from bench.probes import MODULES as PROBE_MODULES
from bench.probes._probe import Context
from bench.run.results import Row, add_floor_ratios, document_of, label_of, load_document, metadata, summarize
from bench.store import store_quick
from bench.run.placement import split_applicable
from bench.run.runner import compare
from bench.stats import median_interval, per_repeat_ratios
from bench.run.targets import Workload
from methods import REGISTRY

FULL_REPEATS, QUICK_REPEATS = 5, 9
# Repeats chosen from the measured spread, as pyperf calibrates its runs: once every group has
# run, the flat-out group holding the row whose slowdown is least pinned down (the widest 95 %
# interval, relative to the slowdown) runs EXTRA_ROUND more repeats, and again, while that
# interval is wider than WIDE_INTERVAL each side, the group has fewer than MAX_REPEATS_FACTOR
# times the sweep's repeats, and the extra rounds have taken less than EXTRA_BUDGET_S (the full
# sweep stays within 30 minutes). A slowdown under SETTLED_BELOW is not judged: its relative
# interval divides by a number near zero.
EXTRA_ROUND, MAX_REPEATS_FACTOR, EXTRA_BUDGET_S = 3, 2, 150.0
WIDE_INTERVAL, SETTLED_BELOW = 0.05, 0.10
FULL_PLACEMENTS, QUICK_PLACEMENTS = ("shared", "split"), ("shared",)
# For the progress bar's ETA only: steps a probe takes per variant and placement (a ceiling's
# ramp, confirmed bisection and control, twice; a bystander's repeats, both ways).
PROBE_STEPS_GUESS = {"ceilings": 36, "bystanders": 10, "bystanders, another program": 10}


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
    groups = plan.placed(plan.QUICK_GROUPS if quick else plan.full_groups(), placements)
    total = sum((len(group.lineup) + 1) * repeats for group in groups)
    if not quick:
        total += sum(len(module.PROBE.lineup()) * PROBE_STEPS_GUESS.get(module.PROBE.name, 1) * len(placements)
                     for module in PROBE_MODULES)
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
            sections |= run_probes(repeats, skipped, progress, placements)
    finally:
        progress.close()
    sections["meta"] = metadata() | {"wall_s": round(time.monotonic() - started, 1),
                                     "profile": "quick" if quick else "full", "repeats": repeats,
                                     "placements": list(placements),
                                     **({} if quick else {"primary_groups": plan.primary_groups()}),
                                     "phase_s": {kind: round(s, 1) for kind, s in progress.seconds.items()}}
    return sections


def run_probes(repeats: int, skipped: list[dict], progress: "Progress", placements: tuple[str, ...]) -> dict:
    """Every probe of the plan, in its order, on the variants it applies to that can run here."""
    context = Context(repeats, placements, progress.phase, progress.step, skipped)
    found: dict[str, list] = {}
    for module in PROBE_MODULES:
        entries = found.setdefault(module.PROBE.fills, [])
        try:
            entries.extend(module.run(available(module.PROBE.lineup(), skipped), context))
        except Exception as error:  # noqa: BLE001 (a probe that fails is reported; the sweep keeps the rest)
            context.failed(f"the {module.PROBE.name} probe", error, f"({module.PROBE.name})")
    return found


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


def inexact_rows(runs: list[Row]) -> tuple[list[Row], list[Row]]:
    """(our own rows that did not capture exactly: failures; reference peers' rows that did
    not: findings about those peers, reported but not failed)."""
    inexact = [r for r in runs if r.exact is False]
    peers = [r for r in inexact if REGISTRY[r.method].reference_peer]
    return [r for r in inexact if r not in peers], peers


def quick_sweep(out: Path, repeats: int = QUICK_REPEATS):
    """Run and store the quick sweep (results/quick.json); returns its document as stored."""
    return load_document(store_quick(out, document_of(sweep(True, repeats))))
