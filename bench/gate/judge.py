"""The regression gate on stored results (`tapbench gate NEW --baseline OLD`): two documents,
judged by bench/document/compare.py. The gate CI runs measures the old and the new code on
this machine in one run instead (bench/gate/ab.py); stored baselines stay, for capture and history."""
from __future__ import annotations

import sys

from bench.document.compare import Change, regressions
from bench.document.rows import Document


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def gate(baseline: Document, new: Document, threshold: float, alpha: float, across_machines: bool,
         accept_undecided: bool = False) -> list[Change]:
    """The rows of new that regressed against baseline, or could not be judged (unless
    accept_undecided): the gate fails on any."""
    return regressions(baseline, new, threshold, alpha, across_machines, warn=_warn, accept_undecided=accept_undecided)
