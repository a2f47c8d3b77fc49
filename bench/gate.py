"""Compare two results files, and gate on regressions.

Correctness is gated exactly: a row that captured exactly in the baseline and no longer does
fails. Speed is gated statistically and only on same-run ratios (overhead / bare of each
repeat), never on absolute nanoseconds: a row fails only when a one-sided Mann-Whitney U test
says the new ratios are larger (p < alpha) *and* the median grew by more than the threshold.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.results import method_label, row_key
from bench.stats import per_repeat_ratios

# Metadata that, when it differs, makes absolute times incomparable (ratios still travel).
MACHINE_KEYS = ("kernel", "cpu_model", "cpu_count", "lockdown")


def machines_differ(old: dict, new: dict) -> list[str]:
    return [k for k in MACHINE_KEYS if old["metadata"].get(k) != new["metadata"].get(k)]


def overhead_ratios(row: dict) -> np.ndarray:
    """Per-repeat (observed - bare) / bare: paired within each repeat, so machine drift cancels."""
    return per_repeat_ratios(row["samples_observed_ns_per_move"], row["samples_bare_ns_per_move"])


@dataclass
class Change:
    key: tuple
    label: str
    old_ratio: float
    new_ratio: float
    p_value: float | None
    correctness_regressed: bool
    speed_regressed: bool
    note: str = ""
    missing: bool = False  # the row is in the baseline only

    @property
    def cv(self) -> float:
        """Coefficient of variation of the two medians (sample standard deviation over mean):
        the spread between two sweeps of the same code."""
        mean = (self.old_ratio + self.new_ratio) / 2
        return abs(self.new_ratio - self.old_ratio) / np.sqrt(2) / abs(mean) if mean else float("inf")

    @property
    def change(self) -> float:
        return (self.new_ratio - self.old_ratio) / abs(self.old_ratio) if self.old_ratio else float("inf")


def compare_documents(old: dict, new: dict, threshold: float = 0.10, alpha: float = 0.01,
                      min_samples: int = 5) -> tuple[list[Change], list[str]]:
    """Changes for every row present in both, and warnings (machine differs, rows missing)."""
    from scipy.stats import mannwhitneyu  # a second to import: only when comparing

    warnings = []
    differing = machines_differ(old, new)
    if differing:
        warnings.append("the machines differ (" + ", ".join(differing) + "): only ratios are compared")
    new_rows = {row_key(r): r for r in new["runs"]}
    changes = []
    for old_row in old["runs"]:
        key = row_key(old_row)
        new_row = new_rows.get(key)
        label = (f"{method_label(old_row)} {old_row['target']} G={old_row['goroutines']} {old_row['moves']} moves "
                 f"{old_row.get('placement', 'free')}")
        if new_row is None:
            # A row that stopped being measured tests nothing: a failure, unless the new
            # results say why its method cannot run here and the baseline came from elsewhere.
            reason = next((s["reason"] for s in new.get("skipped", []) if s["method"] == old_row["method"]), None)
            excused = reason is not None and bool(differing)
            note = (f"missing: {old_row['method']} skipped here ({reason}); baseline from another machine"
                    if excused else "MISSING from the new results" + (f" ({reason})" if reason else ""))
            changes.append(Change(key, label, float(np.median(overhead_ratios(old_row))), float("nan"),
                                  None, not excused, False, note, missing=True))
            continue
        correctness = old_row.get("exact") is True and new_row.get("exact") is not True
        old_samples, new_samples = overhead_ratios(old_row), overhead_ratios(new_row)
        p_value, speed, note = None, False, ""
        if old_row.get("paced") or new_row.get("paced"):
            note = "paced: no overhead to compare"
        elif min(len(old_samples), len(new_samples)) < min_samples:
            note = f"fewer than {min_samples} repeats: speed not tested"
        else:
            p_value = float(mannwhitneyu(new_samples, old_samples, alternative="greater").pvalue)
            grew = np.median(new_samples) - np.median(old_samples) > threshold * abs(np.median(old_samples))
            speed = p_value < alpha and bool(grew)
            # The overhead over the floor is the ratio that should hold across machines: a
            # backend that drifts away from its floor regressed, whatever the bare time did.
            old_floor, new_floor = old_row.get("over_floor_samples"), new_row.get("over_floor_samples")
            if old_floor and new_floor and min(len(old_floor), len(new_floor)) >= min_samples:
                floor_p = float(mannwhitneyu(new_floor, old_floor, alternative="greater").pvalue)
                floor_grew = np.median(new_floor) - np.median(old_floor) > threshold * abs(np.median(old_floor))
                if floor_p < alpha and floor_grew:
                    speed, note = True, f"over its floor: {np.median(old_floor):.2f}× -> {np.median(new_floor):.2f}×"
        changes.append(Change(key, label, float(np.median(old_samples)), float(np.median(new_samples)),
                              p_value, correctness, speed, note))
    return changes, warnings


def changes_table(changes: list[Change]) -> str:
    from tabulate import tabulate

    rows = []
    for c in changes:
        if c.missing:
            verdict = c.note
        elif c.correctness_regressed:
            verdict = "CAPTURE REGRESSED"
        else:
            verdict = "SLOWER" if c.speed_regressed else (c.note or "ok")
        new = ["-", "-", "-"] if c.missing else [f"{c.new_ratio:+.0%}", f"{c.change:+.0%}", f"{c.cv:.1%}"]
        rows.append([c.label, f"{c.old_ratio:+.0%}", *new,
                     "-" if c.p_value is None else f"{c.p_value:.3f}", verdict])
    return tabulate(rows, headers=["row", "target slowdown old", "new", "change of it", "CV of the two",
                                   "p (new > old)", "verdict"],
                    tablefmt="simple", disable_numparse=True)


def judge(baseline: dict, new: dict, threshold: float, alpha: float, across_machines: bool) -> list[Change]:
    """Print the comparison; return the rows that regressed. On a different machine a speed
    change is reported but not failed (unless across_machines): it says nothing about the code."""
    changes, warnings = compare_documents(baseline, new, threshold, alpha)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(changes_table(changes))
    other_machine = bool(machines_differ(baseline, new)) and not across_machines
    if other_machine and any(c.speed_regressed for c in changes):
        print("warning: speed regressions above are not failed: the baseline was measured on "
              "another machine (--across-machines to fail them)", file=sys.stderr)
    return [c for c in changes if c.correctness_regressed or (c.speed_regressed and not other_machine)]


def gate(baseline: dict, new: dict, threshold: float, alpha: float, across_machines: bool,
         sweep_again: Callable[[], dict] | None = None) -> list[Change]:
    """The regressions of new against baseline. sweep_again: when the new results come from a
    sweep the gate ran itself, how to run another; a speed regression must then show again in
    that second, independent sweep: a real regression does, a burst of load on a shared
    machine rarely hits the same rows twice."""
    failed = judge(baseline, new, threshold, alpha, across_machines)
    if failed and sweep_again is not None and not any(c.correctness_regressed for c in failed):
        print("speed regression: confirming with a second quick sweep", file=sys.stderr)
        again = {c.label for c in judge(baseline, sweep_again(), threshold, alpha, across_machines)}
        failed = [c for c in failed if c.label in again]
    return failed
