"""CPU placement: where the target and the observer run, a measured dimension of every row.

  shared  the target and every observer thread and helper (strace, bpftrace) on one CPU: the
          article's "one core"
  split   the target on one CPU, the observer on the others
  free    the scheduler decides

Placement moves results by up to several times in both directions: waking a stopped tracee on
another vCPU is expensive in a VM (ptrace is cheaper shared), while a consumer sharing the
target's CPU takes time from it (eBPF and preload are cheaper split). So a figure is only a
figure with its placement, and bare runs are always measured in the same placement as the
observed runs they are paired with.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

PLACEMENTS = ("shared", "split", "free")
DEFAULT_PLACEMENT = "free"


class PlacementNotApplicable(Exception):
    """This machine cannot place that way (split needs two CPUs); the message says why."""


# The CPUs this process may use, read once, before any placement pinned it.
USABLE_CPUS = sorted(os.sched_getaffinity(0))


def cpus_for(placement: str) -> tuple[set[int] | None, set[int] | None]:
    """(the target's CPUs, the observer's CPUs) for a placement; None: wherever the scheduler
    likes. The target takes the last usable CPU."""
    if placement == "free":
        return None, None
    if placement == "shared":
        return {USABLE_CPUS[-1]}, {USABLE_CPUS[-1]}
    if placement == "split":
        if len(USABLE_CPUS) < 2:
            raise PlacementNotApplicable(f"split placement needs two CPUs; tapbench may use {len(USABLE_CPUS)}")
        return {USABLE_CPUS[-1]}, set(USABLE_CPUS[:-1])
    raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")


def _threads() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


@contextmanager
def observer_placed(placement: str) -> Iterator[set[int] | None]:
    """Run the observer (every thread of this process, and the helpers it starts, which inherit
    the affinity) on its CPUs; yields the target's CPUs. The previous affinity comes back after."""
    target_cpus, observer_cpus = cpus_for(placement)
    if observer_cpus is None:
        yield target_cpus
        return
    before = {tid: os.sched_getaffinity(tid) for tid in _threads()}
    try:
        for tid in before:
            set_affinity(tid, observer_cpus)
        yield target_cpus
    finally:
        for tid, cpus in before.items():
            set_affinity(tid, cpus)


def set_affinity(tid: int, cpus: set[int]) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except ProcessLookupError:
        pass  # a thread that has ended meanwhile


def split_applicable() -> bool:
    return len(USABLE_CPUS) >= 2
