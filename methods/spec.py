"""What a technique declares beyond how it observes: its claims, and how the sweep measures it.

bench/plan.py reads these declarations from every registered technique: a technique added as
one file in methods/ joins the sweep (a group of its own beside its floor, a live run), every
probe that applies to it, the headline and the gate's rows, with no edit anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Flat-out moves a run: a mechanism that runs per write in the kernel or in the process
# (a BPF program, a hook) is measured on many; one that stops or traps the target at every
# write (a tracer, a uprobe) on fewer, or the sweep would take hours.
MANY_MOVES, FEW_MOVES = 200_000, 20_000


def claim(aspect: str, text: str, value: float | None = None, **when) -> dict:
    """One of the article's claims about a technique. aspect: overhead_ns, ceiling_per_s,
    intrusiveness, privileges or kernel_dependence; value: the number a measurement is held
    against, if the claim has one; when: the options of the variant it is about (none: all)."""
    return {"aspect": aspect, "text": text, "value": value, "when": when}


@dataclass(frozen=True)
class SweepSpec:
    """How the sweep measures a technique.

    options: the variant the sweep's probes measure (the options it runs with, written out so
      that results name the variant; none: its defaults).
    moves: flat-out moves a run of its own group (MANY_MOVES or FEW_MOVES).
    gate_moves: moves a run of the regression gate's A/B (tapbench gate): as many as keep a run
      of it near a tenth of a second here.
    primary_group: the curated sweep group its headline row comes from, where that group
      measures it; otherwise, the group of its own the plan gives a technique no curated group
      holds (bench/plan.py).
    more: probe name -> further variants that probe measures beside `options` (eBPF: the CO-RE
      loader where a new process attaches).
    not_probed: probe name -> why that probe does not apply to it, in words (shown by --plan).
    """

    options: dict = field(default_factory=dict)
    moves: int = MANY_MOVES
    gate_moves: int = 50_000
    primary_group: str | None = None
    more: dict[str, tuple[dict, ...]] = field(default_factory=dict)
    not_probed: dict[str, str] = field(default_factory=dict)
