"""Bystander cost: what watching the opponent costs a process nobody is watching.

An unwatched copy of the opponent writes flat out while an observer watches another, paced
opponent; its own report gives its time per write. The reference, interleaved, is the same
bystander beside the same paced opponent, unobserved: on two CPUs the paced opponent alone
takes a share of the machine, and that share is not the observer's. Enabling a syscall
tracepoint puts every task on the slow system-call path, whatever the BPF filter says: this is
where that shows.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading

import numpy as np

from bench.probes._probe import Context, Probe, everyone
from bench.run.runner import collector_paused, settle, teardown_tracked
from bench.run.targets import TARGETS, Workload, target_seen_by
from bench.run.truth import Truth
from methods.base import REGISTRY


PROBE = Probe("bystanders", everyone, order=130,
              what="an unwatched copy of the watched binary's cost while another is watched")


def watched_workload(method: str) -> Workload:
    """A paced opponent that stays alive for the whole measurement, on the path the method
    can see (the preload hook only sees libc writes)."""
    return Workload(target_seen_by(method), 10_000_000, rate=1000)


def bystander_alone(method: str, workload: Workload, scratch: str) -> float:
    """The bystander beside the paced opponent the method would watch, nobody watching."""
    paced = subprocess.Popen(watched_workload(method).argv(os.path.join(scratch, "paced.json")),
                             stdout=subprocess.DEVNULL)
    try:
        report = os.path.join(scratch, "bystander.json")
        subprocess.run(workload.argv(report), stdout=subprocess.DEVNULL, check=True)
    finally:
        paced.kill()
        paced.wait()
    truth = Truth.load(report)
    return truth.wall_ns / truth.written


def bystander_while_watching(method: str, options: dict, workload: Workload, scratch: str) -> float:
    with REGISTRY[method](**options) as observer, collector_paused():
        observer.launch(watched_workload(method).argv(os.path.join(scratch, "watched.json")))
        observer.release()
        bystander_report = os.path.join(scratch, "bystander.json")
        bystander = subprocess.Popen(workload.argv(bystander_report), stdout=subprocess.DEVNULL)
        # Keep consuming (a tracer must, or the watched opponent stalls) until the bystander
        # ends; a thread ends the observation then, whether or not events are flowing.
        ender = threading.Thread(target=lambda: (bystander.wait(), observer.stop()))
        ender.start()
        for _ in observer.batches():
            pass
        ender.join()
        if bystander.returncode != 0:
            raise RuntimeError("the bystander failed")
    truth = Truth.load(bystander_report)
    return truth.wall_ns / truth.written


# Who the bystander is. A syscall tracepoint slows every process alike; a uprobe traps in the
# processes that run the probed binary only, so both kinds of bystander are measured.
BYSTANDER_KINDS = {"copy": "a copy of the watched binary", "other": "another program"}
BINARY_OF = {target: binary for target, (binary, _) in TARGETS.items()}


def bystander_target(method: str, kind: str) -> str:
    """copy: the watched build itself; other: a build on another binary file."""
    watched = target_seen_by(method)
    if kind == "copy":
        return watched
    return next(t for t in TARGETS if BINARY_OF[t] != BINARY_OF[watched])


def bystander_cost(method: str, options: dict, moves: int = 200_000, repeats: int = 5,
                   progress=lambda text: None, kind: str = "copy") -> dict:
    """Median bystander ns per write with and without the observer, interleaved, raw samples."""
    workload = Workload(bystander_target(method, kind), moves)
    alone, watching = [], []
    with tempfile.TemporaryDirectory(prefix="tapbench-bystander-") as scratch:
        for repeat in range(repeats):
            steps = [("alone", alone), ("watching", watching)]
            for name, samples in steps if repeat % 2 == 0 else reversed(steps):
                settle()  # the previous observer's teardown finished
                progress(f"bystander {method}: {name} {repeat + 1}/{repeats}")
                with teardown_tracked():
                    if name == "alone":
                        samples.append(bystander_alone(method, workload, scratch))
                    else:
                        samples.append(bystander_while_watching(method, options, workload, scratch))
    alone_ns, watching_ns = np.array(alone), np.array(watching)
    paired = watching_ns - alone_ns
    return {"method": method, "options": options, "moves": moves, "repeats": repeats,
            "control": "paced opponent unobserved", "bystander": BYSTANDER_KINDS[kind],
            "bystander_target": workload.target,
            "bystander_ns_per_write_alone": float(np.median(alone_ns)),
            "bystander_ns_per_write_watching": float(np.median(watching_ns)),
            "bystander_extra_ns": float(np.median(paired)),
            "bystander_ratio": float(np.median(watching_ns / alone_ns)),
            "samples_alone": alone, "samples_watching": watching}


def run(lineup: list[tuple[str, dict]], context: Context, kind: str = "copy") -> list[dict]:
    found = []
    for method, options in lineup:
        context.phase(f"measuring the bystander cost of {method} {options} ({kind})", "bystanders")
        found.append(bystander_cost(method, options, repeats=context.repeats, progress=context.step, kind=kind))
    return found
