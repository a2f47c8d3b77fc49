"""Run the opponent bare and observed, alternating, and verify every observed capture."""
from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from array import array
from dataclasses import dataclass, field

import numpy as np
import psutil

from bench.targets import Workload
from bench.truth import Truth, writer_counts
from bench.verify import Verdict, verify
from methods.base import REGISTRY, Observer, baseline_method


# Pause before each execution: the kernel finishes tearing down the previous observer (a BPF
# program and its ring are freed after an RCU grace period, a syscall tracepoint stays enabled
# until then), which otherwise slowed whichever run came next.
SETTLE_S = 0.5


class TargetFailed(RuntimeError):
    """The opponent crashed or was killed mid-run; carries the partial verified capture."""

    def __init__(self, message: str, partial: Verdict):
        super().__init__(message)
        self.partial = partial


@dataclass
class Execution:
    """One run of the opponent under one method."""

    method: str
    ns_per_move: float
    ready_ns: int  # from launch() to the mechanism being in place
    truth: Truth
    verdict: Verdict | None = None  # None for the unobserved method
    lost_reported: int = 0  # what the mechanism itself says it dropped
    latencies_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mechanism: dict = field(default_factory=dict)
    not_applicable: str | None = None  # the mechanism could not see this target at all
    observer_cpu_ns: int = 0  # CPU the observer's process tree used from release to the end
    last_seen_ns: int = 0  # CLOCK_MONOTONIC when Python received the last event


def execute(method: str, options: dict, workload: Workload) -> Execution:
    """Launch the opponent under `method`, release it, collect events, verify them."""
    observer_class = REGISTRY[method]
    with tempfile.TemporaryDirectory(prefix="tapbench-") as scratch:
        report_path = os.path.join(scratch, "truth.json")
        children_before = _reaped_children_cpu_ns()
        with observer_class(**options) as observer:
            started = time.monotonic_ns()
            process = observer.launch(workload.argv(report_path), stdout=subprocess.DEVNULL)
            ready_ns = time.monotonic_ns() - started
            # The observer's CPU is counted from here: start-up (a BPF compile ...) is ready_ns.
            self_before = _own_cpu_ns()
            helpers_before = _helpers_cpu_ns(exclude=observer.pid)
            observer.release()
            pids, heads = array("q"), []
            latencies = array("q")
            event = None
            for event in observer.events():
                pids.append(event.pid)
                heads.append(event.raw)
                latencies.append(event.seen_ns - event.ts_ns)
            last_seen_ns = event.seen_ns if event else 0  # the loop's last event
            returncode = process.wait()
            target_pid = observer.pid  # not process.pid when the observer wraps the target
            counters = observer.counters
            mechanism = mechanism_facts(observer)
            not_applicable_because = observer.not_applicable
        own_cpu_ns = _own_cpu_ns() - self_before
        children_cpu_ns = _reaped_children_cpu_ns() - children_before + _helpers_delta_ns(helpers_before)

        if returncode != 0 or not os.path.exists(report_path):
            # No ground truth from a dead opponent, but what was captured can still be checked
            # against the sequence it was writing: a partial capture, verified.
            partial = verify(zip(pids, heads), workload.seed,
                             writer_counts(workload.moves, workload.goroutines), target_pid)
            raise TargetFailed(
                f"the opponent ended with exit status {returncode} under {method}; "
                f"{partial.captured} moves were captured before, {partial.phantom} phantom, "
                f"{'in order' if partial.in_order else 'OUT OF ORDER'}", partial)
        truth = Truth.load(report_path)
    truth.check()
    if truth.report["pid"] != target_pid:
        raise RuntimeError(f"{method} watched PID {target_pid}, but the opponent was {truth.report['pid']}")
    execution = Execution(method=method, ns_per_move=truth.wall_ns / max(truth.written, 1),
                          ready_ns=ready_ns, truth=truth, lost_reported=counters.lost,
                          latencies_ns=np.frombuffer(latencies, dtype=np.int64),
                          mechanism=mechanism, last_seen_ns=last_seen_ns,
                          # The target is a reaped child too: what is left is the observer's.
                          observer_cpu_ns=own_cpu_ns + children_cpu_ns - truth.report["cpu_ns"])
    if not observer_class.baseline:
        execution.verdict = verify(zip(pids, heads), truth.seed, truth.counts, target_pid,
                                   truth.report["noise_writes_stdout"])
        execution.not_applicable = not_applicable_because(truth.written)
    return execution


def _own_cpu_ns() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def _reaped_children_cpu_ns() -> int:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def _helpers_cpu_ns(exclude: int | None) -> dict[int, int]:
    """CPU already used by each of our live child processes other than the target (strace,
    bpftrace after their start-up, multiprocessing's resource tracker), by PID."""
    used = {}
    for child in psutil.Process().children(recursive=True):
        if child.pid != exclude:
            try:
                used[child.pid] = _process_cpu_ns(child)
            except psutil.NoSuchProcess:
                pass
    return used


def _process_cpu_ns(process: psutil.Process) -> int:
    times = process.cpu_times()
    return int((times.user + times.system + times.children_user + times.children_system) * 1e9)


def _helpers_delta_ns(before: dict[int, int]) -> int:
    """Correction to RUSAGE_CHILDREN for the helpers: one reaped since contributed its whole
    CPU there, of which only what came after `before` is the run's; one still alive (the
    resource tracker) contributed nothing there, so its CPU since is added from psutil."""
    delta = 0
    for pid, used in before.items():
        try:
            delta += _process_cpu_ns(psutil.Process(pid)) - used
        except psutil.NoSuchProcess:
            delta -= used
    return delta


def mechanism_facts(observer: Observer) -> dict:
    """What the mechanism says about itself, for the JSON: the counters every backend keeps,
    and its own facts under its method's name."""
    return {"captured_reported": observer.counters.captured, "lost_reported": observer.counters.lost,
            "bytes": observer.counters.bytes, observer.method: observer.facts()}


def compare(methods: list[tuple[str, dict]], workload: Workload, repeats: int,
            progress=lambda text: None) -> tuple[list[Execution], list[list[Execution]]]:
    """Run bare and every observed method `repeats` times, interleaved and rotating the order
    each repeat (A B C, B C A, ...), so drifts in machine load hit every side alike.
    Returns (bare executions, executions per method), index i of each from repeat i."""
    bare_method = baseline_method()
    lineup = [(bare_method, {})] + [(m, o) for m, o in methods if m != bare_method]
    bare: list[Execution] = []
    observed: list[list[Execution]] = [[] for _ in methods]
    for repeat in range(repeats):
        shift = repeat % len(lineup)
        for name, options in lineup[shift:] + lineup[:shift]:
            progress(f"repeat {repeat + 1}/{repeats}: {name} "
                     + " ".join(str(v) for v in options.values() if isinstance(v, str)))
            time.sleep(SETTLE_S)
            execution = execute(name, options, workload)
            if name == bare_method:
                bare.append(execution)
            for index, (method, method_options) in enumerate(methods):
                if (method, method_options) == (name, options) or (method == name == bare_method):
                    observed[index].append(execution)
    return bare, observed
