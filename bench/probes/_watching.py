"""Intrusiveness, measured: what each method needs and what it does to the watched process.

  attach_startup   attach to an opponent already running: time until the mechanism is in
                   place and until the first move is seen
  least_privilege  the smallest capability bounding set (tried in order) under which a run
                   still captures exactly
  sigkill_fate     SIGKILL tapbench while it watches: what happens to the opponent, and whether
                   anything (BPF programs, segments, a stopped tracee) is left behind

What the opponent itself noticed (TracerPid, LD_PRELOAD, libraries) comes from the self-check
in every run's ground-truth report; the bystander cost from bench/bystander.py.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.targets import OPPONENT_NAME, ROOT, Workload, is_opponent, target_seen_by
from bench.truth import Truth
from methods.base import REGISTRY
from methods.process import SKIP_CAPABILITY_PRECHECK, proc_status_field

# Capability sets tried in order, smallest first; "all" is root as it is.
CAPABILITY_SETS = [
    ("none", "-all"),
    # ptrace of a process holding capabilities the tracer lacks (one root started) needs it
    ("CAP_SYS_PTRACE", "-all,+sys_ptrace"),
    # setting vm.mmap_min_addr (zpoline's page at address 0) needs it
    ("CAP_SYS_RAWIO", "-all,+sys_rawio"),
    # each of the article's two alone, then together
    ("CAP_BPF", "-all,+bpf"),
    ("CAP_PERFMON", "-all,+perfmon"),
    ("CAP_BPF+CAP_PERFMON", "-all,+bpf,+perfmon"),
    # a perf buffer larger than perf_event_mlock_kb needs CAP_IPC_LOCK
    ("CAP_BPF+CAP_PERFMON+CAP_IPC_LOCK", "-all,+bpf,+perfmon,+ipc_lock"),
    ("CAP_BPF+CAP_PERFMON+CAP_IPC_LOCK+CAP_SYS_RESOURCE", "-all,+bpf,+perfmon,+ipc_lock,+sys_resource"),
    ("CAP_SYS_ADMIN+CAP_IPC_LOCK+CAP_SYS_RESOURCE", "-all,+sys_admin,+ipc_lock,+sys_resource"),
]
PROBE_MOVES = 500
ATTACH_RATE = 10_000  # moves/s of the running opponent an observer attaches to
ATTACH_TIMEOUT_S = 60  # for a move to be seen by an attaching watch (a BPF compile takes seconds)


def option_flags(options: dict) -> list[str]:
    flags = []
    for name, value in options.items():
        if value is True:
            flags.append(f"--{name.replace('_', '-')}")
        elif value not in (False, None):
            flags.append(f"--{name.replace('_', '-')}={value}")
    return flags


def tapbench(*argv: str) -> list[str]:
    """The command line of a probe. Probes run with --placement free: what they measure
    (privileges, attach, SIGKILL) must not depend on being allowed to move the target."""
    return [sys.executable, "-m", "bench", *argv]


def _without_precheck() -> dict:
    return os.environ | {SKIP_CAPABILITY_PRECHECK: "1"}


def least_privilege(method: str, options: dict, mode: str = "launch") -> dict:
    """Observe with each bounding set in turn (root uid kept); the first under which it works
    is the minimum found. tapbench's own capability pre-checks are off: the kernel decides.
    launch: `tapbench run`, the opponent is the observer's own child, and it works if the
    capture is exact. attach: `tapbench watch --pid` of an opponent that root started, not the
    observer's child, and it works if a move is seen. Then the same minimum is tried once more
    as an unprivileged user given those capabilities: what fails then is a file permission."""
    if shutil.which("setpriv") is None:
        return {"method": method, "options": options, "mode": mode, "minimum": None,
                "attempts": [], "note": "setpriv is not installed"}
    works = _launch_works if mode == "launch" else _attach_works
    attempts = []
    for name, bounding in CAPABILITY_SETS:
        limited = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--"]
        worked, error = works(limited, method, options)
        attempts.append({"capabilities": name, "worked": worked, "error": None if worked else error})
        if worked:
            as_user = _as_unprivileged_user(bounding)
            worked_as_user, error = works(as_user, method, options)
            return {"method": method, "options": options, "mode": mode, "minimum": name, "attempts": attempts,
                    "as_user": {"uid": UNPRIVILEGED_UID, "capabilities": name, "worked": worked_as_user,
                                "error": None if worked_as_user else error,
                                "refused": None if worked_as_user else refused_call(works, as_user, method, options)}}
    return {"method": method, "options": options, "mode": mode, "minimum": None, "attempts": attempts}


UNPRIVILEGED_UID = 65534  # nobody


def _as_unprivileged_user(bounding: str) -> list[str]:
    """setpriv as uid/gid nobody keeping exactly the capabilities of `bounding` (ambient, so
    that they survive the exec of the Python interpreter)."""
    kept = ",".join(c for c in bounding.split(",") if c.startswith("+"))
    command = ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups",
               f"--bounding-set={bounding}"]
    if kept:
        command += [f"--inh-caps={kept}", f"--ambient-caps={kept}"]
    return [*command, "--"]


# Calls that fail for an unprivileged process by design and are not what stopped it: tapbench's
# own listing of the machine's BPF programs (for its leftovers) needs CAP_SYS_ADMIN and does
# without.
EXPECTED_REFUSALS = ("BPF_PROG_GET_NEXT_ID", "BPF_MAP_GET_NEXT_ID")
STRACED = re.compile(r"^\d+\s+(\w+)\((.*)\) = -1 (EPERM|EACCES) ")


def refused_call(works, prefix: list[str], method: str, options: dict) -> dict | None:
    """The run that failed, once more under strace, which names the last call the kernel refused
    (EPERM: a capability or a policy; EACCES: a file permission): what the verdict is judged on.
    None when no call was refused (a check of tapbench's own stopped it) or strace is missing."""
    if shutil.which("strace") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tapbench-refusal-") as scratch:
        log = Path(scratch) / "strace.txt"
        os.chmod(scratch, 0o777)  # the unprivileged user's strace writes there
        works([*prefix, "strace", "-f", "-qq", "-e", "status=failed", "-s", "200", "-o", str(log)], method, options)
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    refusals = [found for found in map(STRACED.match, lines)
                if found and not any(expected in found.group(2) for expected in EXPECTED_REFUSALS)]
    if not refusals:
        return None
    name, arguments, errno = refusals[-1].groups()
    return {"call": call_text(name, arguments), "errno": errno, "kind": refusal_kind(name, arguments, errno)}


def call_text(name: str, arguments: str) -> str:
    """'openat("/sys/kernel/tracing/...")', 'bpf(BPF_PROG_LOAD)': the call and what it named."""
    path = re.search(r'"([^"]*)"', arguments)
    if name in ("open", "openat", "access", "faccessat", "stat", "statx", "newfstatat") and path:
        return f'{name}("{path.group(1)}")'
    first = arguments.split(",", 1)[0].strip("{ ")
    return f"{name}({first})" if first.isupper() else f"{name}()"


def refusal_kind(name: str, arguments: str, errno: str) -> str:
    if errno == "EACCES" and ("/sys/kernel/tracing" in arguments or "/sys/kernel/debug" in arguments):
        return "a tracefs file permission, not a capability"
    if errno == "EACCES":
        return "a file permission"
    return "a missing capability or a policy"


def _launch_works(limited: list[str], method: str, options: dict) -> tuple[bool, str]:
    result = subprocess.run(
        [*limited, *tapbench("run", "--placement", "free", "--method", method, *option_flags(options),
                             "--target",
                             target_seen_by(method), "--moves", str(PROBE_MOVES), "--repeats", "1")],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env=_without_precheck())
    worked = result.returncode == 0 and f"{PROBE_MOVES}/{PROBE_MOVES} exact" in result.stdout
    return worked, (result.stderr.strip().splitlines() or [""])[-1]


def _attach_works(limited: list[str], method: str, options: dict) -> tuple[bool, str]:
    opponent = _running_opponent(1000)
    watch = subprocess.Popen([*limited, *tapbench("watch", "--placement", "free", "--method", method,
                                                  *watch_flags(method, options),
                                                  "--pid", str(opponent.pid))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_without_precheck())
    try:
        readable, _, _ = select.select([watch.stdout], [], [], ATTACH_TIMEOUT_S)
        line = watch.stdout.readline() if readable else b""
        if b"opponent played" in line:
            return True, ""
        watch.kill()
        error = watch.stderr.read().decode(errors="replace").strip().splitlines()
        return False, error[-1] if error else f"no move seen within {ATTACH_TIMEOUT_S} s"
    finally:
        _stop_watch(watch)
        opponent.kill()
        opponent.wait()


def _running_opponent(rate: float) -> subprocess.Popen:
    """An opponent nobody launched for us: our child, but not under any observer."""
    workload = Workload("go", 100_000_000, rate=rate)
    argv = workload.argv("/dev/null")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


def watch_flags(method: str, options: dict) -> list[str]:
    """The flags of a probe's `tapbench watch`: its options, and the default of every option watch
    would otherwise choose itself (Observer.watch_options: eBPF's loader), so that the probe runs
    the variant its entry is labelled with."""
    cls = REGISTRY[method]
    chosen_by_watch = {name: cls.cli_options[name].get("default") for name in cls.watch_options()}
    return option_flags(chosen_by_watch | options)


def attach_startup(method: str, options: dict, repeats: int = 3) -> dict:
    """A first start in a new process, as `tapbench watch --pid` makes it, attaching to a running
    opponent: milliseconds from starting the watch until it says it watches (attach_ms) and until
    it prints the first move (first_move_ms), once per new process. Nothing compiled by an
    earlier start is reused: a start that reuses bytecode is a row's ready_ms_reused instead."""
    attach_ms, first_move_ms, errors = [], [], []
    for _ in range(repeats):
        opponent = _running_opponent(ATTACH_RATE)
        try:
            _wait_until_writing(opponent.pid)
            started = time.monotonic_ns()
            watch = subprocess.Popen(tapbench("watch", "--placement", "free", "--method", method,
                                              *watch_flags(method, options), "--pid", str(opponent.pid)),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
            try:
                attached, first, error = _first_move(watch, started)
            finally:
                _stop_watch(watch)
            if error:
                errors.append(error)
            else:
                attach_ms.append(attached)
                first_move_ms.append(first)
        finally:
            opponent.kill()
            opponent.wait()
    return {"method": method, "options": options, "repeats": repeats, "start": "a new `tapbench watch --pid` each",
            "attach_ms": attach_ms, "first_move_ms": first_move_ms, "errors": errors}


def _wait_until_writing(pid: int, timeout_s: float = 30.0) -> None:
    """Until the opponent has written (its first write is a line on stderr, then its moves)."""
    deadline = time.monotonic() + timeout_s
    while psutil.Process(pid).io_counters().write_count < 2 and time.monotonic() < deadline:
        time.sleep(0.005)


def _first_move(watch: subprocess.Popen, started: int) -> tuple[float | None, float | None, str | None]:
    """(ms until the watch said it watches, ms until its first move, or the error it ended with)."""
    attached = None
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while attached is None:
        readable, _, _ = select.select([watch.stderr], [], [], max(deadline - time.monotonic(), 0))
        line = watch.stderr.readline() if readable else b""
        if not line:
            return None, None, f"no 'watching' line within {ATTACH_TIMEOUT_S} s" if not readable else \
                (watch.stderr.read().decode(errors="replace").strip().splitlines() or ["the watch ended"])[-1]
        if line.startswith(b"watching PID"):
            attached = (time.monotonic_ns() - started) / 1e6
    readable, _, _ = select.select([watch.stdout], [], [], max(deadline - time.monotonic(), 0))
    line = watch.stdout.readline() if readable else b""
    if b"opponent played" not in line:
        return None, None, f"no move seen within {ATTACH_TIMEOUT_S} s of the start"
    return attached, (time.monotonic_ns() - started) / 1e6, None


def _stop_watch(watch: subprocess.Popen) -> None:
    """SIGINT (the watch detaches and exits), then SIGKILL if it does not; its pipes closed."""
    if watch.poll() is None:
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
    watch.stdout.close()
    watch.stderr.close()


def sigkill_fate(method: str, options: dict) -> dict:
    """SIGKILL a `tapbench watch` mid-observation and look at the opponent a second later.
    Attach mode where the method can attach (the opponent is not tapbench's child), else launch."""
    observer_class = REGISTRY[method]
    mode = "attach" if observer_class.can_attach else "launch"
    leftovers_before = observer_class.leftovers()
    opponent = None
    workload = Workload(target_seen_by(method), 100_000_000, rate=2000)
    if mode == "attach":
        opponent = _running_opponent(2000)
        command = tapbench("watch", "--placement", "free", "--method", method, *watch_flags(method, options),
                           "--pid", str(opponent.pid))
    else:
        command = tapbench("watch", "--placement", "free", "--method", method, *watch_flags(method, options),
                           "--", *workload.argv("/dev/null"))
    harness = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    target = None
    try:
        if not harness.stdout.readline():  # the first move seen: it is watching
            error = (harness.stderr.read().decode(errors="replace").strip().splitlines() or ["?"])[-1]
            return {"method": method, "options": options, "mode": mode, "fate": None,
                    "error": f"the watch did not start: {error}"}
        if mode == "launch":
            children = psutil.Process(harness.pid).children(recursive=True)
            watched = [c for c in children if is_opponent(c.name())]
            target = watched[0].pid if watched else None
        else:
            target = opponent.pid
        harness.kill()
        harness.wait()
        time.sleep(1.0)
        try:
            status = psutil.Process(target).status() if target else psutil.STATUS_DEAD
        except psutil.NoSuchProcess:
            status = psutil.STATUS_DEAD
        if status in (psutil.STATUS_DEAD, psutil.STATUS_ZOMBIE):
            fate = "killed with tapbench"
        elif status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
            fate = f"left {status}"
        else:
            fate = "kept running"
        tracer = proc_status_field(target, "TracerPid") if target and fate == "kept running" else None
        # What the backend says it could leave: give the kernel (programs are freed after an
        # RCU grace period) and Python's resource tracker (it unlinks segments) a moment.
        deadline = time.monotonic() + 5
        while (left := observer_class.leftovers() - leftovers_before) and time.monotonic() < deadline:
            time.sleep(0.05)
        return {"method": method, "options": options, "mode": mode, "fate": fate,
                "tracer_pid_after": tracer, "left_behind": sorted(left)}
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        if opponent is not None:
            opponent.kill()
            opponent.wait()
        elif target is not None and psutil.pid_exists(target):
            psutil.Process(target).kill()  # a launched opponent that outlived tapbench


EXEC_MOVES, EXEC_RATE = 2000, 10_000  # the opponent writes from its start, a move every 100 µs
# The watch ends when the opponent does (0.2 s of moves) or when its --wait of 60 s runs out.
EXEC_WATCH_TIMEOUT_S = 120


def missed_after_exec(method: str, options: dict) -> dict:
    """`tapbench watch --name` started before the opponent exists; the opponent then starts
    writing at once. How many of its moves did the watch miss? Its ground truth says."""
    watch = subprocess.Popen(tapbench("watch", "--placement", "free", "--method", method,
                                      *watch_flags(method, options), "--name", OPPONENT_NAME, "--wait", "60"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    opponent = None
    try:
        ready = ""
        while "waiting for a process named" not in ready:
            line = watch.stderr.readline()
            if not line:  # the watch ended without waiting: it cannot watch that way
                return {"method": method, "options": options, "written": None, "seen": None, "missed": None,
                        "how": None, "error": (ready + watch.stderr.read()).strip().splitlines()[-1]}
            ready += line
        with tempfile.TemporaryDirectory(prefix="tapbench-exec-") as scratch:
            report = f"{scratch}/truth.json"
            opponent = subprocess.Popen(Workload("go", EXEC_MOVES, rate=EXEC_RATE).argv(report),
                                        stdout=subprocess.DEVNULL)
            try:
                out, err = watch.communicate(timeout=EXEC_WATCH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                # A failure of this probe, said in its row; the sweep goes on (the watch and the
                # opponent are killed below).
                return {"method": method, "options": options, "written": None, "seen": None, "missed": None,
                        "how": None, "failed": True,
                        "error": f"the watch did not end within {EXEC_WATCH_TIMEOUT_S} s of the opponent's start"}
            opponent.wait(timeout=30)
            written = Truth.load(report).written
        seen = out.count("opponent played: ")
        return {"method": method, "options": options, "written": written, "seen": seen, "missed": written - seen,
                "how": "caught at exec" if "at exec" in err else "polling /proc, then attach", "error": None}
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        if opponent is not None and opponent.poll() is None:
            opponent.kill()
            opponent.wait()
