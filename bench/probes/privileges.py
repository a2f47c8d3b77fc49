"""Least privilege, measured: the smallest capability bounding set (tried in order) under which
a run still captures exactly, then the same set as an unprivileged user; where that fails, the
call the kernel refused, named. tapbench's own capability pre-checks are off: the kernel decides."""
from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.probes._probe import Context, Probe, everyone
from bench.probes._watching import (ATTACH_TIMEOUT_S, option_flags, running_opponent, stop_watch, tapbench,
                                    watch_flags, without_precheck)
from bench.run.targets import ROOT, target_seen_by

PROBE = Probe("privileges", everyone, order=60, what="the least capabilities at launch, then as uid 65534")

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


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return context.each(lineup, "least privilege of {} {} (launch)", least_privilege)


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
    works = launch_works if mode == "launch" else attach_works
    attempts = []
    for name, bounding in CAPABILITY_SETS:
        limited = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--"]
        worked, error = works(limited, method, options)
        attempts.append({"capabilities": name, "worked": worked, "error": None if worked else error})
        if worked:
            as_user = as_unprivileged_user(bounding)
            worked_as_user, error = works(as_user, method, options)
            return {"method": method, "options": options, "mode": mode, "minimum": name, "attempts": attempts,
                    "as_user": {"uid": UNPRIVILEGED_UID, "capabilities": name, "worked": worked_as_user,
                                "error": None if worked_as_user else error,
                                "refused": None if worked_as_user else refused_call(works, as_user, method, options)}}
    return {"method": method, "options": options, "mode": mode, "minimum": None, "attempts": attempts}


UNPRIVILEGED_UID = 65534  # nobody


def as_unprivileged_user(bounding: str) -> list[str]:
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
    # In /tmp, whatever TMPDIR says (it may be a folder of root's alone), and the unprivileged
    # user's own: its strace writes the log there.
    with tempfile.TemporaryDirectory(prefix="tapbench-refusal-", dir="/tmp") as scratch:
        log = Path(scratch) / "strace.txt"
        os.chown(scratch, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
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


# What tapbench itself is made of and writes: a refusal to reach these is of the installation
# (a checkout in a home folder the user cannot enter, a lock file of root's), not the kernel's
# answer to a technique's capabilities.
OWN_FILES = (str(ROOT), sys.prefix, "/run/tapbench")


def refusal_kind(name: str, arguments: str, errno: str) -> str:
    path = re.search(r'"([^"]*)"', arguments)
    if errno == "EACCES" and path and path.group(1).startswith(OWN_FILES):
        return "tapbench's own files, out of that user's reach"
    if errno == "EACCES" and ("/sys/kernel/tracing" in arguments or "/sys/kernel/debug" in arguments):
        return "a tracefs file permission, not a capability"
    if errno == "EACCES":
        return "a file permission"
    return "a missing capability or a policy"


def launch_works(limited: list[str], method: str, options: dict) -> tuple[bool, str]:
    result = subprocess.run(
        [*limited, *tapbench("run", "--placement", "free", "--method", method, *option_flags(options),
                             "--target",
                             target_seen_by(method), "--moves", str(PROBE_MOVES), "--repeats", "1")],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env=without_precheck())
    worked = result.returncode == 0 and f"{PROBE_MOVES}/{PROBE_MOVES} exact" in result.stdout
    return worked, (result.stderr.strip().splitlines() or [""])[-1]


def attach_works(limited: list[str], method: str, options: dict) -> tuple[bool, str]:
    opponent = running_opponent(1000)
    try:
        watch = subprocess.Popen([*limited, *tapbench("watch", "--placement", "free", "--method", method,
                                                      *watch_flags(method, options), "--pid", str(opponent.pid))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=without_precheck())
    except BaseException:
        opponent.kill()
        opponent.wait()
        raise
    try:
        readable, _, _ = select.select([watch.stdout], [], [], ATTACH_TIMEOUT_S)
        line = watch.stdout.readline() if readable else b""
        if b"opponent played" in line:
            return True, ""
        watch.kill()
        error = watch.stderr.read().decode(errors="replace").strip().splitlines()
        return False, error[-1] if error else f"no move seen within {ATTACH_TIMEOUT_S} s"
    finally:
        stop_watch(watch)
        opponent.kill()
        opponent.wait()
