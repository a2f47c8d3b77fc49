"""Find and remove what a killed tapbench run may have left on the machine.

By design little can be left: BPF programs live only as long as the process holding their
file descriptors, a dead tracer's tracees are detached by the kernel, and launched targets
get PR_SET_PDEATHSIG. What can stay is a shared-memory segment of the preload backend when
the process that created it was SIGKILLed before Python's resource tracker removed it.
"""
from __future__ import annotations

import glob
import os

import psutil

SEGMENT_GLOB = "/dev/shm/tapbench-*"


def mapped_paths() -> set[str]:
    paths = set()
    for process in psutil.process_iter():
        try:
            paths.update(m.path for m in process.memory_maps(grouped=True))
        except (psutil.Error, OSError):
            continue
    return paths


def stale_segments() -> list[str]:
    segments = sorted(glob.glob(SEGMENT_GLOB))
    if not segments:
        return []
    in_use = mapped_paths()
    return [s for s in segments if s not in in_use]


def stopped_opponents() -> list[int]:
    """Opponents left in a stop state with no tracer (none should ever be)."""
    found = []
    for process in psutil.process_iter(["pid", "name", "status"]):
        if process.info["name"] and process.info["name"].startswith("rock-paper-scis") \
                and process.info["status"] == psutil.STATUS_STOPPED:
            found.append(process.info["pid"])
    return found


def clean(report=print) -> int:
    """Remove leftovers, say what was removed, return how many things were."""
    removed = 0
    for segment in stale_segments():
        try:
            os.unlink(segment)
        except FileNotFoundError:
            continue
        report(f"cleanup: removed {segment} (no process had it mapped)")
        removed += 1
    for pid in stopped_opponents():
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            continue
        report(f"cleanup: killed stopped opponent PID {pid}")
        removed += 1
    return removed
