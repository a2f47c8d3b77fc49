"""The regression gate's measuring part: it runs the sweeps it judges, and lets
bench/document/compare.py judge them."""
from __future__ import annotations

import sys
from typing import Callable

from bench.document.compare import Change, regressions
from bench.document.rows import Document


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def gate(baseline: Document, new: Document, threshold: float, alpha: float, across_machines: bool,
         sweep_again: Callable[[], Document] | None = None) -> list[Change]:
    """The regressions of new against baseline. sweep_again: when the new results come from a
    sweep the gate ran itself, how to run another; a speed regression must then show again in
    that second, independent sweep: a real regression does, a burst of load on a shared
    machine rarely hits the same rows twice."""
    failed = regressions(baseline, new, threshold, alpha, across_machines, warn=_warn)
    if failed and sweep_again is not None and not any(c.correctness_regressed for c in failed):
        _warn("speed regression: confirming with a second quick sweep")
        again = {c.label for c in regressions(baseline, sweep_again(), threshold, alpha, across_machines,
                                              warn=_warn)}
        failed = [c for c in failed if c.label in again]
    return failed
