"""Throughput ceiling: the highest paced move rate a method captures completely while the
target still keeps its schedule. Found by search: a ramp (×4 per step) from START_RATE until a
probe fails or the target's own unobserved maximum is reached, then bisection (on a log scale)
between the last rate that held and the first that did not.

Each probe is one verified run. It fails for any of four reasons, all recorded:
  loss       the method did not capture every move (or saw a phantom);
  disorder   a writer's moves arrived out of order;
  throttled  the target fell behind its schedule: it could not write at that rate while watched;
  backlog    the consumer was still receiving events long after the target had finished: it
             buffered what it could not keep up with.
Near the boundary (the bisection) a rate holds only if CONFIRMATIONS probes in a row all hold.
At the first failing rate the target also runs alone, paced, as a control: if it cannot keep
that schedule unobserved either, the limit is the machine's, not the method's, and that is said.
"""
from __future__ import annotations

import math

import numpy as np

from bench.probes._probe import Context, Probe, everyone
from bench.run.runner import execute, settle
from bench.run.targets import Workload
from methods.base import REGISTRY, baseline_method

PROBE = Probe("ceilings", everyone, order=40, what="the throughput ceiling, searched twice in each placement")
START_RATE = 1000
RAMP_FACTOR = 4
BISECT_STEPS = 4  # a factor of 4 split 4 times: the ceiling is known to within 9 %
PROBE_SECONDS = 0.5  # each probe writes this long at its rate (at least MIN_PROBE_MOVES)
MIN_PROBE_MOVES = 2000
KEEP_FRACTION = 0.95  # the target kept its schedule if it wrote at >= 95 % of the offered rate
# The consumer kept up if its last event arrived within this long of the target's last write:
# a method that only buffers a burst it cannot process (bpftrace's large perf buffers) has no
# ceiling at that rate, however complete its capture is in the end.
BACKLOG_LIMIT_S = 0.2 * PROBE_SECONDS
BARE_MOVES = 500_000
BARE_RUNS = 3  # the target's own flat-out maximum: the median of these
CONFIRMATIONS = 3
# The search stops at this share of the unobserved flat-out rate: the paced target alone
# cannot hold its full flat-out rate as a schedule every time on a noisy machine.
TOP_SHARE = 0.9


def unobserved_maximum(target: str, placement: str = "free") -> float:
    """Moves per second the target writes flat out with nobody watching (median of runs)."""
    workload = Workload(target, BARE_MOVES, placement=placement)
    return float(np.median([1e9 / execute(baseline_method(), {}, workload).ns_per_move for _ in range(BARE_RUNS)]))


def probe(method: str, options: dict, target: str, rate: float, placement: str = "free") -> dict:
    moves = max(MIN_PROBE_MOVES, int(rate * PROBE_SECONDS))
    settle()
    execution = execute(method, options, Workload(target, moves, rate=rate, placement=placement))
    verdict = execution.verdict  # None for the unobserved control
    wall_s = execution.truth.wall_ns / 1e9
    achieved = execution.truth.written / wall_s
    complete = verdict is None or (verdict.captured == verdict.expected and verdict.phantom == 0)
    in_order = verdict is None or verdict.in_order
    backlog_s = max(execution.last_seen_ns - execution.truth.report["end_mono_ns"], 0) / 1e9 if verdict else 0.0
    reasons = ([] if complete else ["loss"]) + ([] if in_order else ["disorder"]) \
        + ([] if achieved >= KEEP_FRACTION * rate else ["throttled"]) \
        + ([] if backlog_s <= BACKLOG_LIMIT_S else ["backlog"])
    captured = verdict.captured if verdict else execution.truth.written
    written = max(execution.truth.written, 1)
    return {"offered": rate, "achieved": achieved, "captured_rate": captured / wall_s,
            "backlog_s": backlog_s, "moves": moves, "captured": captured,
            "lost": verdict.lost if verdict else 0, "lost_reported": execution.lost_reported,
            "phantom": verdict.phantom if verdict else 0, "in_order": in_order,
            "held": not reasons, "reasons": reasons,
            # who used the CPU at this rate: what limits a ceiling in shared placement
            "observer_cpu_ns_per_move": execution.observer_cpu_ns / written,
            "target_loop_cpu_ns_per_move": execution.target_loop_cpu_ns / written}


def find_ceiling(method: str, options: dict, target: str, maximum: float,
                 progress=lambda text: None, placement: str = "free") -> dict:
    probes = []

    def held(rate: float, times: int = 1) -> bool:
        for _ in range(times):
            progress(f"ceiling of {method}: probing {rate:,.0f} moves/s")
            probes.append(probe(method, options, target, rate, placement))
            if not probes[-1]["held"]:
                return False
        return True

    top = TOP_SHARE * maximum
    good, bad = None, None
    rate = START_RATE
    while bad is None:
        if held(rate):
            good = rate
            if rate >= top:
                break
            rate = min(rate * RAMP_FACTOR, top)
        else:
            bad = rate
    if good is not None and bad is not None:
        for _ in range(BISECT_STEPS):
            middle = math.sqrt(good * bad)
            if held(middle, CONFIRMATIONS):
                good = middle
            else:
                bad = middle
    failed = [p for p in probes if not p["held"]]
    control = None
    if bad is None:
        limited_by = f"none up to {TOP_SHARE:.0%} of the target's own maximum"
        limit = "the target's own rate"
    else:
        at_bad = [p for p in failed if p["offered"] == bad]
        limited_by = " and ".join(sorted({reason for p in at_bad for reason in p["reasons"]}))
        progress(f"ceiling of {method}: the target alone at {bad:,.0f} moves/s")
        control = probe(baseline_method(), {}, target, bad, placement)
        if "throttled" in control["reasons"]:
            limited_by += " (the target alone, unobserved, was throttled at that rate too)"
            limit = "the target's own rate"
        else:
            limit = what_limits(method, at_bad[-1], placement)
    return {"method": method, "options": options, "target": target, "placement": placement,
            "unobserved_max": maximum,
            "ceiling": good, "limited_by": limited_by, "limit": limit, "first_failure": bad, "probes": probes,
            "confirmations": CONFIRMATIONS, "control_at_first_failure": control}


# The bisection's last rung is one run's: the search is made this many times, so that the
# bracket it gives (the lowest rate held last, the highest failed first) has a spread.
SEARCHES = 2


def find_ceiling_repeated(method: str, options: dict, target: str, maximum: float,
                          progress=lambda text: None, placement: str = "free", searches: int = SEARCHES) -> dict:
    """find_ceiling() `searches` times: the first search's entry, with every search's held and
    first failing rate beside it (what the verdicts and the bracket are judged on)."""
    found = [find_ceiling(method, options, target, maximum, progress, placement) for _ in range(searches)]
    return found[0] | {"searches": [{"ceiling": f["ceiling"], "first_failure": f["first_failure"],
                                     "limited_by": f["limited_by"]} for f in found]}


# In shared placement, a consumer that took at least this share of the one CPU at the failing
# rate is what held the target back.
CONSUMER_SHARE = 0.25


def what_limits(method: str, failed: dict, placement: str) -> str:
    """What a failing probe ran into: the mechanism (the target itself slowed: a tracer's
    stop at every write, a program in its system call), the consumer (events not taken in
    time, or, sharing one CPU, taking the target's time), in words with the figures."""
    consumer_kind = REGISTRY[method].loss_source is not None  # a ring or a tool reads the events
    if {"loss", "backlog"} & set(failed["reasons"]) and consumer_kind:
        return "consumer (it did not take the events in time)"
    observer, target = failed["observer_cpu_ns_per_move"], failed["target_loop_cpu_ns_per_move"]
    share = observer / max(observer + target, 1)
    if consumer_kind and placement == "shared" and share >= CONSUMER_SHARE:
        return f"consumer (it took {share:.0%} of the one CPU)"
    if not consumer_kind:
        return "mechanism (the target waits at every stop)"
    return f"mechanism (the target's own CPU, the observer took {share:.0%})"


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    """Each variant's ceiling on the first target it sees, in each placement, against the
    target's own flat-out rate there (measured once per target and placement)."""
    found, maxima = [], {}
    for placement in context.placements:
        for method, options in lineup:
            target = REGISTRY[method].targets[0]
            if (target, placement) not in maxima:
                maxima[target, placement] = unobserved_maximum(target, placement)
            context.phase(f"searching the throughput ceiling of {method} on {target}, {placement}", "ceilings")
            found.append(find_ceiling_repeated(method, options, target, maxima[target, placement], context.step,
                                               placement))
    return found
