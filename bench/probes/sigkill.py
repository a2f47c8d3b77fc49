"""SIGKILL of tapbench while it watches: what happens to the opponent, and whether anything (BPF
programs, segments, a stopped tracee) is left behind."""
from __future__ import annotations

import time

import psutil
import subprocess

from bench.probes._probe import Context, Probe, everyone
from bench.probes._watching import running_opponent, tapbench, watch_flags
from bench.run.targets import ROOT, Workload, is_opponent, target_seen_by
from methods import REGISTRY
from methods._kernel.process import proc_status_field

PROBE = Probe("sigkill", everyone, attaching=True, order=80, what="tapbench SIGKILLed while it watches")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return context.each(lineup, "SIGKILL of tapbench while {} {} watches", sigkill_fate)


def sigkill_fate(method: str, options: dict) -> dict:
    """SIGKILL a `tapbench watch` mid-observation and look at the opponent a second later.
    Attach mode where the method can attach (the opponent is not tapbench's child), else launch."""
    observer_class = REGISTRY[method]
    mode = "attach" if observer_class.can_attach else "launch"
    leftovers_before = observer_class.leftovers()
    opponent = None
    workload = Workload(target_seen_by(method), 100_000_000, rate=2000)
    if mode == "attach":
        opponent = running_opponent(2000)
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
