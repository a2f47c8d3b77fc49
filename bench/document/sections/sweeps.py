"""Sweeps: the wall time of the sweeps, and the spread of each row's slowdown between this
sweep and the one before it (same rows, same machine), with Holm's correction over the rows."""
from __future__ import annotations

import numpy as np

from bench.document.compare import compare_documents, definitions_differ, machines_differ, same_code
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template
from bench.stats import holm_adjusted

TITLE, ANCHOR = "Sweeps", "sweeps"
# Run-to-run: below this target slowdown a row's CV says little (it divides by nearly zero).
NEAR_ZERO_SLOWDOWN = 0.10
# Two sweeps' repeats of a row are told apart below this p (two-sided Mann-Whitney), after
# Holm's correction for testing every row at once.
SWEEPS_APART_P = 0.05


def wall_times(document: Document, quick: Document | None) -> list[str]:
    meta, lines = document.metadata, []
    if meta.get("wall_s") is not None:
        extended = sorted({r.repeats for r in document.runs if r.repeats > meta.get("repeats", r.repeats)})
        more = f", up to {extended[-1]} where the spread asked for more" if extended else ""
        lines.append(f"- this sweep (`make bench`, {meta.get('repeats', '?')} repeats{more}): {meta['wall_s']:.0f} s")
        if meta.get("phase_s"):
            lines.append("  - where the time went: " + ", ".join(
                f"{kind} {seconds:.0f} s" for kind, seconds in sorted(meta["phase_s"].items(), key=lambda k: -k[1])))
    if quick and quick.metadata.get("wall_s") is not None:
        lines.append(f"- quick sweep (`tapbench sweep --quick`, this machine's `baseline.json`, "
                     f"{quick.metadata['date']}): {quick.metadata['wall_s']:.0f} s")
    return lines


def two_sided_p(old: np.ndarray, new: np.ndarray) -> float | None:
    """None where there are too few repeats, or nothing varies, to test."""
    from scipy.stats import mannwhitneyu  # a second to import: only when comparing

    if min(len(old), len(new)) < 3 or np.ptp(np.concatenate([old, new])) == 0:
        return None
    return float(mannwhitneyu(old, new, alternative="two-sided").pvalue)


def code_text(old_commit, new_commit) -> str:
    if old_commit == new_commit:
        return "same commit"
    shown = {"old": str(old_commit)[:12], "new": str(new_commit)[:12]}
    return template("sweeps", "results_only" if same_code(old_commit, new_commit) else "different_commits", **shown)


def spread_table(previous: Document, document: Document) -> Table | None:
    changes, _ = compare_documents(previous, document)
    # Paced rows have no slowdown to compare; a not-applicable row's is noise around zero.
    not_applicable = {r.key for r in document.runs if r.not_applicable}
    changes = [c for c in changes if not c.note and not c.missing and c.key not in not_applicable]
    if not changes:
        return None
    # A CV divides by the mean slowdown: for a floor's few per cent it says little.
    near_zero = [abs(c.old_ratio + c.new_ratio) / 2 < NEAR_ZERO_SLOWDOWN for c in changes]
    cvs = [c.cv for c, small in zip(changes, near_zero) if not small]
    old_commit, new_commit = previous.metadata.get("commit"), document.metadata.get("commit")
    # Whether the two sweeps' per-repeat slowdowns tell apart at all, every row tested at
    # once: Holm's correction keeps the chance of any row told apart by chance below 5 %.
    old_rows, new_rows = previous.keyed_rows(), document.keyed_rows()
    p_values = [two_sided_p(old_rows[c.key].slowdowns(), new_rows[c.key].slowdowns()) for c in changes]
    tested = [i for i, p in enumerate(p_values) if p is not None]
    adjusted = dict(zip(tested, holm_adjusted([p_values[i] for i in tested])))
    same = old_commit == new_commit or same_code(old_commit, new_commit)
    prose = template(
        "sweeps", date=previous.metadata["date"], code=code_text(old_commit, new_commit),
        spread=(f"median {np.median(cvs):.1%}, {sum(cv <= 0.05 for cv in cvs)} of {len(cvs)} rows at most 5 %"
                if cvs else "no row slows the target by 10 % or more"),
        near_zero=f"{NEAR_ZERO_SLOWDOWN:.0%}", tested=len(tested), alpha=SWEEPS_APART_P,
        apart=sum(adjusted[i] < SWEEPS_APART_P for i in tested),
        raw_apart=sum(p_values[i] < SWEEPS_APART_P for i in tested),
        goal=template("sweeps", "same_code_goal" if same else "other_code_goal"))
    rows = [[c.label, f"{c.old_ratio:+.0%}", f"{c.new_ratio:+.0%}", f"{(c.new_ratio - c.old_ratio) * 100:+.1f}",
             f"{c.cv:.1%}" + (" †" if small else ""), "-" if p is None else f"{p:.3f}",
             "-" if i not in adjusted else f"{adjusted[i]:.3f}"]
            for i, (c, small, p) in enumerate(zip(changes, near_zero, p_values))]
    return Table(["row", "previous sweep", "this sweep", "difference, points", "CV", "p", "Holm p"], rows,
                 prose=prose)


def section(document: Document, previous: Document | None, quick: Document | None) -> Section:
    found = Section(TITLE, ANCHOR, "\n".join(wall_times(document, quick)))
    if previous and not machines_differ(previous, document):
        definitions = definitions_differ(previous, document)
        if definitions:
            found.notes = f"Run-to-run spread: not shown: {definitions}."
        else:
            table = spread_table(previous, document)
            found.tables += [table] if table else []
    return found
