"""Compare two results documents: what `tapbench compare` prints, what the run-to-run table
shows and what the gate judges.

Correctness is compared exactly: a row that captured exactly in the old document and no longer
does has regressed. Speed is compared statistically and only on the target's per-repeat
slowdowns ((observed − bare) / bare of each repeat), never on absolute nanoseconds: a row is
slower only when a one-sided Mann-Whitney U test says the new slowdowns are larger (p < alpha)
*and* their median grew by more than the threshold.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.document.rows import COST_DEFINED_IN, Document
from bench.document.sections.skipped import Skipped

REPOSITORY = Path(__file__).resolve().parents[2]
# Metadata that, when it differs, makes absolute times incomparable (ratios still travel).
MACHINE_KEYS = ("kernel", "cpu_model", "cpu_count", "lockdown")


def machines_differ(old: Document, new: Document) -> list[str]:
    return [k for k in MACHINE_KEYS if old.metadata.get(k) != new.metadata.get(k)]


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
    missing: bool = False  # the row is in the old document only
    # Why speed or capture could not be judged (too few repeats, another definition, a
    # baseline that was not exact): the gate fails closed on it unless told to accept it.
    undecided: str = ""

    @property
    def cv(self) -> float:
        """Coefficient of variation of the two medians (sample standard deviation over mean):
        the spread between two sweeps of the same code."""
        mean = (self.old_ratio + self.new_ratio) / 2
        return abs(self.new_ratio - self.old_ratio) / np.sqrt(2) / abs(mean) if mean else float("inf")

    @property
    def change(self) -> float:
        """The relative change of the median slowdown: (new − old) / |old|."""
        return (self.new_ratio - self.old_ratio) / abs(self.old_ratio) if self.old_ratio else float("inf")


def definitions_differ(old: Document, new: Document) -> str | None:
    """Why two documents' rows cannot be set against each other on speed, if they cannot: one
    was measured before results format 5 redefined what a row's CPU figures count, the other
    after. Comparing them would report the new definition as a regression or an improvement."""
    formats = sorted({old.measured_format, new.measured_format})
    if formats[0] < COST_DEFINED_IN <= formats[-1]:
        return (f"the two were measured under different definitions (results formats {formats[0]} and "
                f"{formats[-1]}): speed is not compared; capture still is")
    return None


def row_label(document: Document, row) -> str:
    return (f"{document.label(row)} {row.target} G={row.goroutines} {row.moves} moves {row.placement}"
            f" [{row.group}]")


def compare_documents(old: Document, new: Document, threshold: float = 0.10, alpha: float = 0.01,
                      min_samples: int = 5) -> tuple[list[Change], list[str]]:
    """Changes for every row of the old document, and warnings (machine differs). Rows are
    paired by their full key (group included); a document with two rows of one key is refused."""
    from scipy.stats import mannwhitneyu  # a second to import: only when comparing

    warnings = []
    differing = machines_differ(old, new)
    if differing:
        warnings.append("the machines differ (" + ", ".join(differing) + "): only ratios are compared")
    definitions = definitions_differ(old, new)
    if definitions:
        warnings.append(definitions)
    new_rows = new.keyed_rows()
    changes = []
    for key, old_row in old.keyed_rows().items():
        new_row = new_rows.get(key)
        label = row_label(old, old_row)
        if new_row is None:
            # A row that stopped being measured tests nothing: a failure, unless the new
            # results say why its method cannot run here and the baseline came from elsewhere.
            reason = next((s.reason for s in Skipped.of(new) if s.method == old_row.method), None)
            excused = reason is not None and bool(differing)
            note = (f"missing: {old_row.method} skipped here ({reason}); baseline from another machine"
                    if excused else "MISSING from the new results" + (f" ({reason})" if reason else ""))
            changes.append(Change(key, label, float(np.median(old_row.slowdowns())), float("nan"),
                                  None, not excused, False, note, missing=True))
            continue
        correctness = old_row.exact is True and new_row.exact is not True
        old_samples, new_samples = old_row.slowdowns(), new_row.slowdowns()
        p_value, speed, note, undecided = None, False, "", ""
        if old_row.exact is False and new_row.exact is not True:
            undecided = "the baseline's capture was not exact: nothing to compare with"
        if definitions:
            note = "measured under different definitions: not compared"
            undecided = undecided or "speed measured under different definitions"
        elif old_row.paced or new_row.paced:
            note = "paced: no overhead to compare"
        elif min(len(old_samples), len(new_samples)) < min_samples:
            note = f"fewer than {min_samples} repeats: speed not tested"
            undecided = undecided or note
        else:
            p_value = float(mannwhitneyu(new_samples, old_samples, alternative="greater").pvalue)
            grew = np.median(new_samples) - np.median(old_samples) > threshold * abs(np.median(old_samples))
            speed = p_value < alpha and bool(grew)
            # The overhead over the floor is the ratio that should hold across machines: a
            # backend that drifts away from its floor regressed, whatever the bare time did.
            old_floor, new_floor = old_row.over_floor_samples, new_row.over_floor_samples
            if old_floor and new_floor and min(len(old_floor), len(new_floor)) >= min_samples:
                floor_p = float(mannwhitneyu(new_floor, old_floor, alternative="greater").pvalue)
                floor_grew = np.median(new_floor) - np.median(old_floor) > threshold * abs(np.median(old_floor))
                if floor_p < alpha and floor_grew:
                    speed, note = True, f"over its floor: {np.median(old_floor):.2f}× -> {np.median(new_floor):.2f}×"
        changes.append(Change(key, label, float(np.median(old_samples)), float(np.median(new_samples)),
                              p_value, correctness, speed, note, undecided=undecided))
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
    return tabulate(rows, headers=["row", "target slowdown old", "new", "relative change of the median slowdown",
                                   "CV of the two medians", "p (new > old)", "verdict"],
                    tablefmt="simple", disable_numparse=True)


def regressions(baseline: Document, new: Document, threshold: float, alpha: float,
                across_machines: bool, say=print, warn=print, accept_undecided: bool = False) -> list[Change]:
    """Print the comparison; return the rows that regressed, and those that could not be
    judged unless accept_undecided (the gate fails closed). On a different machine a speed
    change is reported but not failed (unless across_machines): it says nothing about the code."""
    changes, warnings = compare_documents(baseline, new, threshold, alpha)
    for warning in warnings:
        warn(f"warning: {warning}")
    say(changes_table(changes))
    other_machine = bool(machines_differ(baseline, new)) and not across_machines
    if other_machine and any(c.speed_regressed for c in changes):
        warn("warning: speed regressions above are not failed: the baseline was measured on "
             "another machine (--across-machines to fail them)")
    undecided = [c for c in changes if c.undecided and not c.correctness_regressed]
    for change in undecided:
        warn(f"{'warning' if accept_undecided else 'ERROR'}: {change.label}: not judged: {change.undecided}")
    return [c for c in changes if c.correctness_regressed or (c.speed_regressed and not other_machine)
            or (c.undecided and not accept_undecided)]


def same_code(old_commit: str | None, new_commit: str | None, repository: Path = REPOSITORY) -> bool:
    """Whether two measured commits differ only in results/ (a commit that stores results
    changes no code): asked of git, so False when either is unknown here or was dirty."""
    if not old_commit or not new_commit or "dirty" in old_commit or "dirty" in new_commit:
        return False
    try:
        out = subprocess.run(["git", "diff", "--quiet", old_commit, new_commit, "--", ".", ":(exclude)results"],
                             capture_output=True, timeout=10, cwd=repository)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


# What the measurements measure: a change here after a sweep makes its figures stale.
MEASURED_CODE = ("methods", "bpf", "preload", "gotargets")


def changed_since(commit: str | None, repository: Path = REPOSITORY) -> list[str] | None:
    """The files of the measured code (MEASURED_CODE) that changed between `commit` and the
    code at hand (HEAD and the working tree); None when git cannot tell (no repository, or a
    commit it does not know)."""
    if not commit:
        return None
    base = commit.removesuffix("-dirty")
    try:
        out = subprocess.run(["git", "diff", "--name-only", base, "--", *MEASURED_CODE], capture_output=True,
                             text=True, timeout=10, cwd=repository)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sorted(out.stdout.split()) if out.returncode == 0 else None


def staleness(commit: str | None, what: str, repository: Path = REPOSITORY) -> str:
    """One sentence: which commit `what` was measured at, and whether the measured code changed
    since ('' when nothing is known about the commit)."""
    if not commit:
        return f"{what}: the commit it was measured at is not recorded."
    changed = changed_since(commit, repository)
    if changed is None:
        return f"{what}: measured at {commit[:12]}, which this repository does not know: whether it is stale is unknown."
    if not changed:
        return f"{what}: measured at {commit[:12]}; the code it measures has not changed since."
    shown = ", ".join(f"`{name}`" for name in changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
    return f"{what}: measured at {commit[:12]}; **stale**: the code it measures changed since ({shown})."
