"""Where a BPF backend's time goes: the kernel's own timing of every program run (BPF run-time
statistics), per variant, beside the overhead per move the sweep measured for that variant.

The statistics cost two clock reads per run, so they are on only here, in runs of their own,
never around a measured overhead. What an empty program measures under them (the timing's own
cost) is subtracted from every program's time per run.
"""
from __future__ import annotations

import os
import time

from bench.probes._probe import Context, Probe, nobody
from bench.run.runner import execute, settle
from bench.run.targets import Workload
from methods._kernel.bpf_system import bpf_program_run_stats, bpf_run_time_stats

CALIBRATION_CALLS = 200_000
# A program that does nothing, on a syscall nothing else here makes often.
EMPTY_PROGRAM = b"TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { return 0; }"


def empty_program_ns() -> float:
    """ns per run that an empty program shows under the statistics: their own cost."""
    from bcc import BPF

    bpf = BPF(text=EMPTY_PROGRAM)
    try:
        with bpf_run_time_stats():
            for _ in range(CALIBRATION_CALLS):
                os.getppid()
            stats = [bpf_program_run_stats(function.fd) for function in bpf.funcs.values()]
    finally:
        bpf.cleanup()
    runs = sum(s["runs"] for s in stats)
    return sum(s["run_ns"] for s in stats) / runs if runs else 0.0


def empty_program_load_ms(times: int = 3) -> float:
    """Median ms for bcc to compile and load a program that does nothing: what any bcc backend
    pays at start before its own program, the least its launch-to-ready can be."""
    from bcc import BPF

    took = []
    for _ in range(times):
        started = time.monotonic()
        BPF(text=EMPTY_PROGRAM).cleanup()
        took.append((time.monotonic() - started) * 1000)
    return sorted(took)[len(took) // 2]


def bpf_profile(variants: list[tuple[str, dict]], workloads: dict[str, Workload]) -> dict:
    """One run of each (method, options) on its workload (by method) with the statistics on;
    per program: runs per move, ns per run net of the timing's cost, ns per move."""
    empty_ns = empty_program_ns()
    rows = []
    for method, options in variants:
        workload = workloads[method]
        settle()
        with bpf_run_time_stats():
            execution = execute(method, options, workload)
        if not execution.verdict.exact:
            raise RuntimeError(f"{method} {options} was not exact while profiled: {execution.verdict}")
        moves = execution.truth.written
        for program, stats in execution.mechanism[method]["programs"].items():
            runs, run_ns = stats["runs"], stats["run_ns"]
            net_ns = max(run_ns - runs * empty_ns, 0.0)
            rows.append({"method": method, "options": options, "target": workload.target,
                         "moves": moves, "placement": workload.placement, "program": program,
                         "runs": runs, "runs_per_move": runs / moves,
                         "ns_per_run": net_ns / runs if runs else None,
                         "ns_per_move": net_ns / moves})
    return {"empty_program_ns": empty_ns, "empty_program_load_ms": empty_program_load_ms(), "programs": rows}


PROBE = Probe("bpf_profile", nobody, order=30, what="the kernel's time per run of each BPF program")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    """Every variant named for it, flat out on `go` with as many moves as its technique's own
    group, in each placement; the statistics need CAP_SYS_ADMIN, which the backends do not."""
    from methods import REGISTRY
    from methods.base import ObserverError

    profiles = []
    for placement in context.placements if lineup else ():
        context.phase(f"timing the BPF programs, {placement}", "BPF program times")
        workloads = {method: Workload("go", REGISTRY[method].sweep.moves, placement=placement) for method, _ in lineup}
        try:
            profiles.append(bpf_profile(lineup, workloads) | {"placement": placement})
        except ObserverError as error:
            context.skipped.append({"method": "(BPF program times)", "reason": str(error)})
            break
        context.step(f"BPF programs {placement}")
    return profiles
