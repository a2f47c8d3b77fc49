"""What the kernel says of BPF objects, for every BPF backend: which programs and maps are
loaded (the leftover checks), and how often and for how long a program ran (the kernel's own
run-time statistics, switched on only while held)."""
from __future__ import annotations

import ctypes
import os
import platform
from contextlib import contextmanager

from methods.protocol import ObserverError


SYS_BPF = {"x86_64": 321}  # bpf(2)'s system-call number
BPF_PROG_GET_NEXT_ID, BPF_MAP_GET_NEXT_ID = 11, 12


def _bpf_ids(command: int) -> set[int]:
    """Every ID the kernel lists for BPF_{PROG,MAP}_GET_NEXT_ID; empty where it refuses (the
    listing needs CAP_SYS_ADMIN)."""
    number = SYS_BPF.get(platform.machine())
    if number is None:
        return set()
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)()  # start_id, next_id
    found: set[int] = set()
    while libc.syscall(number, command, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
        found.add(attr[1])
        attr[0] = attr[1]
    return found


def loaded_bpf_program_ids() -> set[int]:
    """IDs of every BPF program loaded on the machine (empty where listing them is not allowed)."""
    return _bpf_ids(BPF_PROG_GET_NEXT_ID)


def loaded_bpf_objects() -> set[tuple[str, int]]:
    """Every BPF program and map on the machine, as ("program" | "map", ID)."""
    return ({("program", i) for i in _bpf_ids(BPF_PROG_GET_NEXT_ID)}
            | {("map", i) for i in _bpf_ids(BPF_MAP_GET_NEXT_ID)})


def bpf_program_leftovers() -> set[str]:
    """What a BPF backend could leave: loaded programs (the kernel unloads ours when the last
    file descriptor closes, however tapbench dies; the SIGKILL probe checks it)."""
    return {f"BPF program {program_id}" for program_id in loaded_bpf_program_ids()}


BPF_ENABLE_STATS, BPF_STATS_RUN_TIME = 32, 0


@contextmanager
def bpf_run_time_stats():
    """While held, the kernel times every run of every BPF program (BPF_ENABLE_STATS, the
    sysctl kernel.bpf_stats_enabled without touching it: the kernel turns it off when the
    descriptor closes, however tapbench ends, so it is never left on). Each run then pays two
    clock reads of its own: for profiling, never around a measured overhead."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME)
    number = SYS_BPF.get(platform.machine())
    fd = -1 if number is None else libc.syscall(number, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        error = ctypes.get_errno()
        why = os.strerror(error) if error else f"no bpf(2) number known for {platform.machine()}"
        raise ObserverError(f"BPF run-time statistics cannot be enabled: {why} (needs CAP_SYS_ADMIN)")
    try:
        yield
    finally:
        os.close(fd)


def bpf_program_run_stats(program_fd: int) -> dict[str, int]:
    """How often a loaded BPF program ran and for how long in all, from its descriptor's fdinfo.
    The kernel counts both only while BPF statistics are on (bpf_run_time_stats())."""
    fields = {}
    with open(f"/proc/self/fdinfo/{program_fd}") as info:
        for line in info:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return {"runs": int(fields.get("run_cnt", 0)), "run_ns": int(fields.get("run_time_ns", 0))}
