"""Run the opponent bare and observed, alternating, and verify every observed capture."""
from __future__ import annotations

import gc
import os
import resource
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import psutil

from bench.run.placement import observer_placed
from bench.run.targets import Workload, scratch_folder
from bench.run.truth import Truth, writer_counts
from bench.run.verify import Verdict, verify, verify_count
from methods.base import REGISTRY, Observer, baseline_method
from methods.protocol import EVENT
from methods._kernel.bpf_system import loaded_bpf_objects
from methods._kernel.process import TargetUser


# Pause before each execution, and then, if the previous execution loaded BPF programs or
# maps, wait until the kernel has freed them (after an RCU grace period; until then a syscall
# tracepoint may stay enabled), which otherwise slowed whichever run came next. A fixed 0.5 s
# did the same at a cost of 4 minutes a sweep.
SETTLE_S = 0.1
TEARDOWN_TIMEOUT_S = 2.0
_created_by_last_execution: set = set()  # the BPF objects the previous execution loaded


def settle() -> None:
    """Before an execution: a short pause, and the previous execution's BPF objects gone."""
    time.sleep(SETTLE_S)
    deadline = time.monotonic() + TEARDOWN_TIMEOUT_S
    while _created_by_last_execution & loaded_bpf_objects() and time.monotonic() < deadline:
        time.sleep(0.01)


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
    # From the opponent's own stamp, taken just before the write, to Python receiving the
    # move: the same definition for every method (only the stamped moves, see Workload).
    latencies_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Breakdown, where the mechanism stamps its events: from that stamp to Python.
    mechanism_latencies_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mechanism: dict = field(default_factory=dict)
    not_applicable: str | None = None  # the mechanism could not see this target at all
    # CPU (ns) of the observer's process tree, the target's left out, in three phases: from
    # launch to release (set-up: a BPF compile, a tracer attached ...), from release until the
    # last event was handed over and the target reaped (what watching the moves took, the work
    # after the target's last write included), and close() (teardown).
    setup_cpu_ns: int = 0
    observer_cpu_ns: int = 0
    teardown_cpu_ns: int = 0
    target_cpu_ns: int = 0  # the target's, exact (wait4) when it is our child, else its own report
    # The target's CPU over its move loop only, as it reports it: what scales with the moves,
    # work a mechanism did in the target's context (a BPF program, a hook) included.
    target_loop_cpu_ns: int = 0
    last_seen_ns: int = 0  # CLOCK_MONOTONIC when Python received the last event


@contextmanager
def collector_paused():
    """While a run is observed, Python's cyclic garbage collector stays off; it runs again after.
    Observing makes no reference cycles (reference counting frees every event), and a collection
    of the oldest generation walks every object of the process, bcc's included: pauses of about
    10 ms, and of up to 1.6 ms for the middle one, which showed up as a live move's latency, and
    as a stopped target's wait. Measured with gc.callbacks around paced runs at 20,000 moves/s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def teardown_tracked():
    """Around an execution: note the BPF objects it loaded, for the next settle() to wait on."""
    global _created_by_last_execution
    before = loaded_bpf_objects()
    try:
        yield
    finally:
        _created_by_last_execution = loaded_bpf_objects() - before


def execute(method: str, options: dict, workload: Workload) -> Execution:
    """Launch the opponent under `method`, release it, collect events, verify them."""
    with teardown_tracked():
        return _execute(method, options, workload)


def _execute(method: str, options: dict, workload: Workload) -> Execution:
    observer_class = REGISTRY[method]
    user = TargetUser.resolve(workload.user) if workload.user is not None else None
    with scratch_folder() as scratch:
        if user is not None and not user.is_current:
            os.chown(scratch, user.uid, user.gid)  # the opponent writes its report here
        report_path = os.path.join(scratch, "truth.json")
        with observer_placed(workload.placement) as target_cpus, observer_class(**options) as observer, \
                collector_paused():
            observer.target_cpus = target_cpus
            observer.target_user = user
            before_launch = tree_cpu_ns(exclude=None)
            started = time.monotonic_ns()
            process = observer.launch(workload.argv(report_path), stdout=subprocess.DEVNULL)
            ready_ns = time.monotonic_ns() - started
            at_release = tree_cpu_ns(exclude=observer.pid)  # the target, alive, is not ours to count
            observer.release()
            batches = []
            for batch in observer.batches():  # a batch at a time: the harness adds no work per event
                batches.append(batch)
            returncode, target_usage = reap(process)
            consumed = tree_cpu_ns(exclude=observer.pid)
            if observer.pid != process.pid:  # a helper's child (strace's): that was the helper's
                target_usage = None
            target_pid = observer.pid  # not process.pid when the observer wraps the target
            counters = observer.counters
            mechanism = mechanism_facts(observer)
            not_applicable_because = observer.not_applicable
            damage = observer.target_damage
        closed = tree_cpu_ns(exclude=None)
        events = np.concatenate(batches) if batches else np.empty(0, dtype=EVENT)
        pids, heads = events["pid"].tolist(), event_heads(events)

        if damage is not None or returncode != 0 or not os.path.exists(report_path):
            _fail_with_partial_capture(method, workload, pids, heads, target_pid,
                                       damage or f"the opponent ended with exit status {returncode}")
        truth = Truth.load(report_path)
    truth.check()
    if truth.report["pid"] != target_pid:
        raise RuntimeError(f"{method} watched PID {target_pid}, but the opponent was {truth.report['pid']}")
    # The target is a reaped child too (of ours, or of a helper of ours): what is left is the
    # observer's. wait4 gives its whole usage, exit included; a target that is a helper's
    # child (strace's) is known only by its own report, taken just before it exits.
    target_cpu_ns = _cpu_ns(target_usage) if target_usage is not None else truth.report["cpu_ns"]
    seen_ns = events["seen_ns"]
    execution = Execution(method=method, ns_per_move=truth.wall_ns / max(truth.written, 1),
                          ready_ns=ready_ns, truth=truth, lost_reported=counters.lost,
                          mechanism_latencies_ns=seen_ns - events["ts_ns"],
                          mechanism=mechanism, last_seen_ns=int(seen_ns[-1]) if seen_ns.size else 0,
                          setup_cpu_ns=at_release - before_launch,
                          # reaped, the target's whole CPU joined our children's: taken off again
                          observer_cpu_ns=consumed - at_release - target_cpu_ns,
                          teardown_cpu_ns=closed - consumed,
                          target_cpu_ns=target_cpu_ns, target_loop_cpu_ns=truth.report["loop_cpu_ns"])
    if options.get("capture") == "count":  # a floor: a count to check, no events
        execution.verdict = verify_count(counters.counted, truth.counts, truth.report["noise_writes_stdout"])
        execution.not_applicable = not_applicable_because(truth.written)
    elif not observer_class.baseline:
        _verify_events(execution, zip(pids, heads), target_pid, seen_ns, not_applicable_because)
    return execution


def _verify_events(execution: Execution, events, target_pid: int, seen_ns: np.ndarray, not_applicable_because) -> None:
    """The capture held to the opponent's ground truth: the verdict, the latency of the moves
    the opponent stamped, and why nothing was seen if the mechanism cannot see this target."""
    truth = execution.truth
    execution.verdict = verify(events, truth.seed, truth.counts, target_pid, truth.report["noise_writes_stdout"],
                               truth.report["stamp_every"])
    execution.latencies_ns = latencies_from_target(execution.verdict, seen_ns, truth)
    execution.not_applicable = not_applicable_because(truth.written)


def _fail_with_partial_capture(method: str, workload: Workload, pids: list, heads: list, target_pid: int,
                               what: str) -> None:
    """No ground truth from a dead (or damaged) opponent, but what was captured can still be
    checked against the sequence it was writing: a partial capture, verified, in the error."""
    partial = verify(zip(pids, heads), workload.seed, writer_counts(workload.moves, workload.goroutines), target_pid)
    raise TargetFailed(f"{what} under {method}; {partial.captured} moves were captured before, {partial.phantom} "
                       f"phantom, {'in order' if partial.in_order else 'OUT OF ORDER'}", partial)


def latencies_from_target(verdict: Verdict, seen_ns: np.ndarray, truth: Truth) -> np.ndarray:
    """For every stamped move that was captured: when Python received it minus the opponent's
    own stamp taken just before its write()."""
    if not verdict.stamped:
        return np.zeros(0, dtype=np.int64)
    every = truth.report["stamp_every"]
    stamps = [w["stamps_ns"] for w in truth.report["writers"]]
    index, writer, n = (np.array(column) for column in zip(*verdict.stamped))
    origin = np.array([stamps[g][k // every] for g, k in zip(writer.tolist(), n.tolist())], dtype=np.int64)
    return seen_ns[index] - origin


def reap(process) -> tuple[int, object | None]:
    """Wait for the launched process; its exit code, and its resource usage when we can have it
    (wait4 on a Popen child; a backend that reaps its child itself may keep it as .rusage)."""
    if isinstance(process, subprocess.Popen):
        if process.returncode is None:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        return process.returncode, None
    return process.wait(), getattr(process, "rusage", None)


def _cpu_ns(usage) -> int:
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def tree_cpu_ns(exclude: int | None) -> int:
    """CPU this process and all its children have used so far: itself, the children already
    reaped (RUSAGE_CHILDREN) and the live ones (strace, bpftrace ...), but for `exclude` (the
    target while it runs). A child that is reaped moves from the second part to the first, so
    the difference of two readings is what the tree used between them."""
    total = _cpu_ns(resource.getrusage(resource.RUSAGE_SELF)) + _cpu_ns(resource.getrusage(resource.RUSAGE_CHILDREN))
    for child in psutil.Process().children(recursive=True):
        if child.pid == exclude:
            continue
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue  # reaped meanwhile: it is in RUSAGE_CHILDREN, or will be by the next reading
        total += int((times.user + times.system + times.children_user + times.children_system) * 1e9)
    return total


def event_heads(events: np.ndarray) -> list[bytes]:
    """Each event's head as bytes, as long as the mechanism copied: for the verifier."""
    heads = events["head"].tobytes()
    width = EVENT["head"].itemsize
    return [heads[i * width:i * width + length] for i, length in enumerate(events["length"].tolist())]


def mechanism_facts(observer: Observer) -> dict:
    """What the mechanism says about itself, for the JSON: the counters every backend keeps,
    and its own facts under its method's name."""
    counters = observer.counters
    return {"captured_reported": counters.captured, "lost_reported": counters.lost,
            "bytes": counters.bytes, "batch_ns_max": counters.batch_ns_max, "counted": counters.counted,
            observer.method: observer.facts()}


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
            settle()
            execution = execute(name, options, workload)
            if name == bare_method:
                bare.append(execution)
            for index, (method, method_options) in enumerate(methods):
                if (method, method_options) == (name, options) or (method == name == bare_method):
                    observed[index].append(execution)
    return bare, observed
