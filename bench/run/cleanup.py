"""Find and remove what a killed tapbench run may have left on the machine.

By design little can be left: BPF programs live only as long as the process holding their
file descriptors, a dead tracer's tracees are detached by the kernel, and launched targets
get PR_SET_PDEATHSIG. What each backend can still leave, and how to find it, it says itself
(Observer.clean_leftovers); what is left of the opponent is the harness's to find.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import psutil

from bench.run.targets import SCRATCH_PREFIX, is_opponent
from methods import REGISTRY


def stopped_opponents() -> list[int]:
    """Opponents left in a stop state with no tracer (none should ever be)."""
    found = []
    for process in psutil.process_iter(["pid", "name", "status"]):
        if is_opponent(process.info["name"] or "") and process.info["status"] == psutil.STATUS_STOPPED:
            found.append(process.info["pid"])
    return found


def orphaned_scratch() -> list[Path]:
    """Scratch folders of runs whose tapbench process is gone (named with its PID: a PID in use
    again keeps its folder, which is the safe mistake)."""
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = path.name[len(SCRATCH_PREFIX):].partition("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            found.append(path)
    return sorted(found)


def clean(report=print) -> int:
    """Remove leftovers, say what was removed, return how many things were."""
    removed = 0
    for cls in REGISTRY.values():
        for sentence in cls.clean_leftovers():
            report(f"cleanup: {sentence}")
            removed += 1
    for pid in stopped_opponents():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        report(f"cleanup: killed stopped opponent PID {pid}")
        removed += 1
    for path in orphaned_scratch():
        shutil.rmtree(path, ignore_errors=True)
        report(f"cleanup: removed {path}, the scratch folder of a killed run")
        removed += 1
    return removed
