"""The least live latency this machine allows: the opponent's stdout read straight from a pipe.

No interception at all: the kernel wakes a reader blocked on the pipe at each write, and Python
stamps what it read. Measured like every method's latency (from the opponent's own stamp, taken
just before its write, to Python), in the same placement, so the latency table can say how much
of a technique's delay is the machine's cross-CPU wake-up and Python, and how much is its own.
"""
from __future__ import annotations

import os
import subprocess
import time
from array import array

import numpy as np

from bench.run.placement import observer_placed
from bench.probes._probe import Context, Probe, nobody
from bench.run.results import percentiles
from bench.run.runner import collector_paused, latencies_from_target
from bench.run.targets import Workload, scratch_folder
from bench.run.truth import Truth
from bench.run.verify import verify

READ_SIZE = 1 << 16


FLOOR_REPEATS = 5  # a floor that rows are set against needs a spread, not one run


def pipe_latency_repeated(workload: Workload, repeats: int = FLOOR_REPEATS) -> dict:
    """pipe_latency() `repeats` times: the first run's entry, with every run's p99 beside it
    (the interval a row's p99 is compared with)."""
    runs = [pipe_latency(workload) for _ in range(repeats)]
    return runs[0] | {"repeats": repeats, "latency_p99_per_repeat_ns": [run["latency_p99_ns"] for run in runs]}


def pipe_latency(workload: Workload) -> dict:
    """Run the opponent with its stdout a pipe that this process reads, blocking; verify what
    was read against the ground truth; the latency of its stamped moves."""
    with scratch_folder() as scratch:
        report_path = os.path.join(scratch, "truth.json")
        with observer_placed(workload.placement) as target_cpus, collector_paused():
            place = (lambda: os.sched_setaffinity(0, target_cpus)) if target_cpus else None
            process = subprocess.Popen(workload.argv(report_path), stdout=subprocess.PIPE, preexec_fn=place)
            lines, seen = [], array("q")
            pending = b""
            try:
                while chunk := os.read(process.stdout.fileno(), READ_SIZE):
                    now = time.monotonic_ns()
                    *complete, pending = (pending + chunk).split(b"\n")
                    lines += complete
                    seen.extend([now] * len(complete))
            except BaseException:  # never leave the opponent behind, however this ends
                process.kill()
                process.wait()
                raise
            finally:
                process.stdout.close()
            if process.wait() != 0:
                raise RuntimeError(f"the opponent ended with exit status {process.returncode} writing to a pipe")
        truth = Truth.load(report_path)
    truth.check()
    verdict = verify(((process.pid, line + b"\n") for line in lines), truth.seed, truth.counts, process.pid,
                     truth.report["noise_writes_stdout"], truth.report["stamp_every"])
    if not verdict.exact:
        raise RuntimeError(f"reading the opponent's pipe was not exact: {verdict}")
    latencies = latencies_from_target(verdict, np.frombuffer(seen, dtype=np.int64), truth)
    return {"workload": workload.label(), "placement": workload.placement, "rate": workload.rate,
            "moves": workload.moves, "stamped": int(latencies.size), **percentiles(latencies)}


PROBE = Probe("latency_floor", nobody, order=25, what="a plain pipe reader's latency, the floor (once per placement)")
PACED = 20_000  # the article's rate, as the sweep's paced groups


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    found = []
    for placement in context.placements:
        context.phase(f"latency of a plain pipe reader, {placement}", "latency floor")
        found.append(pipe_latency_repeated(Workload("go", PACED, rate=PACED, stamp_every=1, placement=placement)))
        context.step(f"pipe latency {placement}")
    return found
