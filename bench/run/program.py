"""Measure any program: `tapbench run --method M[,M...] -- CMD ARGS...`.

CMD runs bare and under each technique, interleaved and rotating as the opponent's runs are
(bench/run/runner.py compare), every run beside the referee (bench/run/referee.py): the kernel's count
of CMD's write() calls to the watched descriptor, per process of its tree. The opponent's
ground truth cannot help with a program no one here wrote; the referee keeps every capture
honest all the same:
  - exact: the technique's count equals the referee's, for every process it claims to watch
    (the launched one; its children too for a backend that follows them). Order and phantom
    writes have no ground truth here and are not judged;
  - time per event: between the referee's stamps of the tree's first and last write, over its
    count, so exec, loading and a hook's start-up are not counted per event; shown apart;
  - cost per event: all the CPU of the run, from release to CMD reaped (CMD's tree, the
    observer's, its helpers'), over the referee's count, less the same in the bare run;
  - the referee's own cost: each repeat has one more bare run, without it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import numpy as np
import psutil

from bench.document.programs import FORMAT as PROGRAM_FORMAT
from bench.run.placement import observer_placed
from bench.run.referee import Referee, Tally
from bench.run.results import label_of, metadata
from bench.run.runner import collector_paused, mechanism_facts, reap, settle, teardown_tracked, tree_cpu_ns
from bench.stats import median_interval, per_repeat_ratios
from methods.base import REGISTRY, baseline_method
from methods.protocol import EVENT, MAX_WATCHED_FD
from methods.protocol import ObserverError

DEFAULT_TIMEOUT_S = 60.0


class ProgramError(ObserverError):
    """CMD cannot be measured (it does not exist, fails, never writes, runs too long)."""


@dataclass
class ProgramRun:
    """One run of CMD, bare or under one technique."""

    method: str
    options: dict
    referee: bool  # whether the referee counted this run
    returncode: int
    released_ns: int  # CLOCK_MONOTONIC when CMD was let go
    reaped_ns: int  # ... and when it had exited and was reaped
    cpu_ns: int  # everything's CPU from release to reaped: CMD's tree, the observer's, its helpers'
    tallies: dict[int, Tally] = field(default_factory=dict)  # the referee's, by PID
    untracked: int = 0  # processes of the tree the referee had no room for
    captured: dict[int, int] = field(default_factory=dict)  # the technique's events, by PID
    lost_reported: int | None = 0
    not_applicable: str | None = None
    damage: str | None = None
    mechanism: dict = field(default_factory=dict)
    launched_pid: int = 0

    @property
    def writes(self) -> int:
        return sum(t.writes for t in self.tallies.values())

    @property
    def first_ns(self) -> int:
        return min((t.first_ns for t in self.tallies.values() if t.writes), default=0)

    @property
    def last_ns(self) -> int:
        return max((t.last_ns for t in self.tallies.values() if t.writes), default=0)

    def ns_per_event(self) -> float | None:
        """Between the first write's entry and the last's, per write after the first."""
        return (self.last_ns - self.first_ns) / (self.writes - 1) if self.writes >= 2 else None


def check_command(argv: list[str]) -> None:
    """One line saying why CMD names no program that can run, if it does not."""
    if not argv:
        raise ProgramError("no command given: tapbench run --method M -- CMD ARGS...")
    program = argv[0]
    path = program if os.sep in program else shutil.which(program)
    if path is None or not os.path.exists(path):
        raise ProgramError(f"no such program: {program}")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise ProgramError(f"{program} is not an executable file")


def check_fd(fd: int) -> None:
    if not 0 <= fd < MAX_WATCHED_FD:
        raise ProgramError(f"--fd must be a descriptor number from 0 to {MAX_WATCHED_FD - 1}, got {fd}")


def kill_tree(pid: int) -> None:
    """CMD and every process it started: nothing it ran is left behind."""
    try:
        process = psutil.Process(pid)
        family = process.children(recursive=True) + [process]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def execute_program(method: str, options: dict, argv: list[str], fd: int, placement: str, user,
                    output: str | None, timeout_s: float, with_referee: bool = True, errors=None) -> ProgramRun:
    """Launch CMD under `method` (the referee loaded first, so its loading is in no run), let it
    go, collect what the technique saw, reap it. Its stdout and stderr go to `output` (default:
    discarded), its stderr to `errors` if given (a file)."""
    settle()
    with teardown_tracked():
        return _execute(method, options, argv, fd, placement, user, output, timeout_s, with_referee, errors)


def _execute(method, options, argv, fd, placement, user, output, timeout_s, with_referee, errors) -> ProgramRun:
    timed_out = threading.Event()
    with (Referee(fd) if with_referee else nullcontext()) as referee, observer_placed(placement) as target_cpus, \
            REGISTRY[method](**options) as observer, collector_paused(), \
            (open(output, "ab") if output else open(os.devnull, "wb")) as sink:
        observer.target_cpus, observer.target_user, observer.watched_fd = target_cpus, user, fd
        process = observer.launch(argv, stdout=sink, stderr=errors or sink)
        if referee is not None:
            referee.watch(observer.pid)

        def expire():
            timed_out.set()
            kill_tree(observer.pid)
        watchdog = threading.Timer(timeout_s, expire)
        watchdog.daemon = True
        at_release = tree_cpu_ns(exclude=None)
        released_ns = time.monotonic_ns()
        observer.release()
        watchdog.start()
        try:
            batches = list(observer.batches())
            returncode, _ = reap(process)
        except BaseException:  # interrupted, or the observer failed: what CMD started goes too
            kill_tree(observer.pid)
            raise
        finally:
            watchdog.cancel()
        reaped_ns = time.monotonic_ns()
        cpu_ns = tree_cpu_ns(exclude=None) - at_release
        if timed_out.is_set():
            where = "unobserved" if REGISTRY[method].baseline else f"under {method}"
            raise ProgramError(f"{argv[0]} ran longer than {timeout_s:g} s {where}: killed "
                               "(--timeout raises the limit)")
        events = np.concatenate(batches) if batches else np.empty(0, dtype=EVENT)
        pids, counts = np.unique(events["pid"], return_counts=True)
        run = ProgramRun(method=method, options=options, referee=with_referee, returncode=returncode,
                         released_ns=released_ns, reaped_ns=reaped_ns, cpu_ns=cpu_ns,
                         captured=dict(zip(pids.tolist(), counts.tolist())),
                         lost_reported=observer.counters.lost, damage=observer.target_damage,
                         mechanism=mechanism_facts(observer), launched_pid=observer.pid)
        if referee is not None:
            run.tallies, run.untracked = referee.tallies(), referee.untracked()
            run.not_applicable = observer.not_applicable(run.tallies[observer.pid].writes)
    return run


def covered(run: ProgramRun) -> dict[int, int]:
    """The referee's count of each process the technique claims to watch."""
    if REGISTRY[run.method].follows_children:
        return {pid: tally.writes for pid, tally in run.tallies.items()}
    return {run.launched_pid: run.tallies[run.launched_pid].writes}


def exact(run: ProgramRun) -> bool:
    """Every process the technique watches, or reported, counted as the kernel counted it."""
    expected = covered(run)
    every = set(expected) | set(run.captured)
    referee = {pid: tally.writes for pid, tally in run.tallies.items()}
    return run.damage is None and run.untracked == 0 and all(
        run.captured.get(pid, 0) == referee.get(pid, 0) for pid in every)


def checked_first_run(argv, fd, placement, user, output, timeout_s) -> ProgramRun:
    """A bare run before the measured ones (not counted): CMD exists, exits 0 and writes to fd."""
    with tempfile.TemporaryFile() as errors:
        run = execute_program(baseline_method(), {}, argv, fd, placement, user, output, timeout_s, errors=errors)
        errors.seek(0)
        said = errors.read().decode(errors="replace").strip().splitlines()
    if run.returncode != 0:
        raise ProgramError(f"{argv[0]} exited with status {run.returncode} unobserved"
                           + (f" (its last words: {said[-1][:200]!r})" if said else "")
                           + ": tapbench measures a program that succeeds")
    if run.writes == 0:
        raise ProgramError(f"{argv[0]} made no write() to descriptor {fd}, as the kernel counted (its children "
                           "included); writev, pwrite and sendmsg are not write()")
    return run


@dataclass
class ProgramRow:
    """One technique in one placement, over the repeats."""

    method: str
    label: str
    placement: str
    follows_children: bool
    runs: list[ProgramRun]
    bare: list[ProgramRun]

    def summary(self) -> dict:
        observed = [r.ns_per_event() for r in self.runs]
        common = {
            "method": self.method, "label": self.label, "placement": self.placement,
            "follows_children": self.follows_children,
            "writes": [r.writes for r in self.runs],  # the referee's, the whole tree
            "failures": [f"exit status {r.returncode}" for r in self.runs if r.returncode != 0]
                        + [r.damage for r in self.runs if r.damage],
            "untracked_processes": sum(r.untracked for r in self.runs),
            "ns_per_event": median_interval([o for o in observed if o is not None]),
            "startup_ms": median_interval([(r.first_ns - r.released_ns) / 1e6 for r in self.runs if r.writes]),
        }
        if REGISTRY[self.method].baseline:  # bare: nothing captured, nothing to compare with itself
            return common | {"not_applicable": None, "exact": None, "captured": None, "expected": None,
                             "lost_reported": None, "slowdown": None, "cpu_cost_ns_per_event": None}
        bare = [r.ns_per_event() for r in self.bare]
        paired = [(o, b) for o, b in zip(observed, bare) if o is not None and b is not None]
        finding = next((r.not_applicable for r in self.runs if r.not_applicable), None)
        return common | {
            "not_applicable": finding,
            "exact": None if finding else all(exact(r) for r in self.runs),
            "captured": [sum(r.captured.values()) for r in self.runs],
            "expected": [sum(covered(r).values()) for r in self.runs],
            "lost_reported": [r.lost_reported for r in self.runs],
            "slowdown": median_interval(per_repeat_ratios([o for o, _ in paired], [b for _, b in paired])),
            "cpu_cost_ns_per_event": median_interval([(o.cpu_ns - b.cpu_ns) / o.writes
                                                      for o, b in zip(self.runs, self.bare) if o.writes]),
        }


def measure(lineup: list[tuple[str, dict, str]], argv: list[str], fd: int, repeats: int, user, output: str | None,
            timeout_s: float, progress=lambda text: None) -> tuple[dict, list[ProgramRow]]:
    """Every technique of lineup (method, options, placement) with its own bare runs in its
    placement, interleaved per repeat and rotating; the referee's cost from bare runs without it."""
    check_fd(fd)
    check_command(argv)
    bare_method = baseline_method()
    by_placement: dict[str, list[tuple[str, dict]]] = {}
    for method, options, placement in lineup:
        if method != bare_method:
            by_placement.setdefault(placement, []).append((method, options))
    rows, referee_runs, written = [], [], []
    for placement, group in (by_placement or {lineup[0][2]: []}).items():
        progress(f"{placement}: a first bare run checks {argv[0]}")
        first = checked_first_run(argv, fd, placement, user, output, timeout_s)
        written.append(first.writes)
        sides = [(bare_method, {}, False), (bare_method, {}, True)] + [(m, o, True) for m, o in group]
        found: dict[int, list[ProgramRun]] = {index: [] for index in range(len(sides))}
        for repeat in range(repeats):
            shift = repeat % len(sides)
            for index in list(range(len(sides)))[shift:] + list(range(len(sides)))[:shift]:
                method, options, refereed = sides[index]
                progress(f"repeat {repeat + 1}/{repeats}: {method}{'' if refereed else ' (no referee)'}, {placement}")
                found[index].append(execute_program(method, options, argv, fd, placement, user, output, timeout_s,
                                                    with_referee=refereed))
        unrefereed, bare = found[0], found[1]
        referee_runs.append((placement, unrefereed, bare))
        written += [r.writes for runs in list(found.values())[1:] for r in runs]
        rows.append(ProgramRow(bare_method, bare_method, placement, False, bare, bare))
        rows += [ProgramRow(method, label_of(method, options), placement, REGISTRY[method].follows_children,
                            found[index], bare) for index, (method, options) in enumerate(group, start=2)]
    referee_cost = {placement: median_interval(
        [(b.reaped_ns - b.released_ns) - (u.reaped_ns - u.released_ns) for u, b in zip(unrefereed, bare)])
        for placement, unrefereed, bare in referee_runs}
    document = {"format": PROGRAM_FORMAT, "argv": argv, "fd": fd, "repeats": repeats,
                "referee_cost_ns_per_run": referee_cost, "writes_seen": sorted(set(written)),
                "rows": [row.summary() for row in rows]}
    return document, rows


def write_json(path: str, document: dict, rows: list[ProgramRow]) -> None:
    """The document, with the machine and the code that measured it, and every run."""
    with open(path, "w") as f:
        json.dump(document | {"meta": metadata(), "runs": [{"label": row.label, "placement": row.placement,
                                                            "runs": [_run_json(run) for run in row.runs]}
                                                           for row in rows]}, f, indent=1)
        f.write("\n")


def _run_json(run: ProgramRun) -> dict:
    found = asdict(run)
    found["tallies"] = [asdict(tally) for tally in run.tallies.values()]
    found["captured"] = {str(pid): count for pid, count in run.captured.items()}
    return found
