"""The preload ring's protocol, mirrored once from preload/ring.h and checked against the hook
library's own layout table at start-up; the clocks and the futex its producer and consumer
share; and what of a program decides whether LD_PRELOAD can reach it at all."""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import struct
from pathlib import Path

import numpy as np

import psutil
from elftools.elf.elffile import ELFFile


from methods.protocol import CAPTURE_BYTES


HOOK_LIBRARY = Path(__file__).resolve().parents[2] / "preload" / "libtapbench_hook.so"

RING_MAGIC, RING_VERSION = 0x52425054, 8

# Rings of older tapbench versions were POSIX shared-memory segments, /dev/shm/tapbench-<random>:
# still looked for, so that one left by a killed run is found and removed.
SEGMENT_PREFIX = "tapbench-"

SEGMENT_GLOB = f"/dev/shm/{SEGMENT_PREFIX}*"

RING_FD_VARIABLE = "TAPBENCH_RING_FD"

RING_FD_LOWEST = 100  # the ring's descriptor in the target: at least this, and above the watched one

# No write() completes in under this many ns (a system call's entry alone takes longer): a
# counter of writes that grew faster than one per this long since launch was not counted by
# the hook.
FASTEST_WRITE_NS = 10

# What a successful write() can have asked for and still be recorded (1 TiB): more is no count
# the hook wrote.
LARGEST_WRITE = 1 << 40

COUNTERS = ("lost", "failed_writes", "counted")  # the hook's counts of writes

# Mirror of preload/ring.h, checked against the library's tapbench_ring_layout at start-up.
HEADER = np.dtype({
    "names": ["magic", "version", "slot_count", "slot_size", "hook_pid", "count_only", "wake_consumer",
              "stamp_tsc", "watched_fd", "hook_state", "rewritten_sites", "claimed", "consumed",
              "consumer_sleeping", "lost", "failed_writes", "counted"],
    "formats": ["<u4", "<u4", "<u4", "<u4", "<u4", "<u4", "<u4", "<u4", "<u4", "<u4", "<u4", "<u8", "<u8", "<u4",
                "<u8", "<u8", "<u8"],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 64, 128, 136, 192, 200, 208],
    "itemsize": 256,
})

CLAIMED_WORD, CONSUMED_WORD = HEADER.fields["claimed"][1] // 8, HEADER.fields["consumed"][1] // 8

SLOT = np.dtype([("published", "<u8"), ("ts_ns", "<u8"), ("count", "<u8"), ("tid", "<u4"),
                 ("copied", "<u4"), ("head", f"V{CAPTURE_BYTES}")])

LAYOUT_FIELDS = ["header_size", "slot_size", "capture_bytes", "off_watched_fd", "magic", "version",
                 "off_slot_count", "off_hook_pid", "off_count_only", "off_wake_consumer", "off_stamp_tsc",
                 "off_claimed",
                 "off_consumed", "off_consumer_sleeping", "off_lost", "off_failed_writes", "off_counted",
                 "off_published", "off_ts_ns", "off_count", "off_tid", "off_copied",
                 "off_head", "off_hook_state", "off_rewritten_sites"]

def python_layout() -> dict[str, int]:
    header, slot = HEADER.fields, SLOT.fields
    return {
        "header_size": HEADER.itemsize, "slot_size": SLOT.itemsize, "capture_bytes": CAPTURE_BYTES,
        "off_watched_fd": header["watched_fd"][1], "magic": RING_MAGIC, "version": RING_VERSION,
        **{f"off_{name}": header[name][1] for name in
           ("slot_count", "hook_pid", "count_only", "wake_consumer", "stamp_tsc", "claimed", "consumed",
            "consumer_sleeping", "lost", "failed_writes", "counted", "hook_state", "rewritten_sites")},
        **{f"off_{name}": slot[name][1] for name in
           ("published", "ts_ns", "count", "tid", "copied", "head")},
    }

@functools.cache
def hook_library() -> ctypes.CDLL:
    """The hook, loaded here for its layout table and its clock pair. Harmless: without
    $TAPBENCH_SHM its constructor does nothing, and RTLD_LOCAL does not interpose our write()."""
    return ctypes.CDLL(str(HOOK_LIBRARY))

def c_layout(library: Path = HOOK_LIBRARY) -> dict[str, int]:
    """The layout a compiled hook (preload's, or zpoline's) was built with, read from its file:
    zpoline's cannot be loaded here (its static TLS, a stack per thread, fits only a library
    loaded at start-up)."""
    with open(library, "rb") as f:
        elf = ELFFile(f)
        symbol = elf.get_section_by_name(".dynsym").get_symbol_by_name("tapbench_ring_layout")[0]
        address, size = symbol["st_value"], symbol["st_size"]
        section = next(s for s in elf.iter_sections() if s["sh_addr"] <= address < s["sh_addr"] + s["sh_size"])
        data = section.data()[address - section["sh_addr"]:address - section["sh_addr"] + size]
    return dict(zip(LAYOUT_FIELDS, struct.unpack(f"<{size // 4}I", data)))

def clock_pair() -> tuple[int, int]:
    """(TSC, CLOCK_MONOTONIC ns) at one moment, read by the hook's own code."""
    tsc, ns = ctypes.c_uint64(), ctypes.c_uint64()
    hook_library().tapbench_clock_pair(ctypes.byref(tsc), ctypes.byref(ns))
    return tsc.value, ns.value

def cpu_flags() -> set[str]:
    """The CPU's feature flags, as /proc/cpuinfo lists them for its first CPU."""
    with open("/proc/cpuinfo") as f:
        return set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))

def tsc_unusable_reason() -> str | None:
    """Why the hook must not stamp with the TSC here, or None. The TSC is usable as a clock
    when it ticks at one rate whatever the CPU's frequency or sleep state (constant_tsc,
    nonstop_tsc) and the kernel itself keeps time with it (it is the current clock source
    only if the kernel found it synchronised across CPUs): CLOCK_MONOTONIC is then a linear
    function of it between NTP adjustments, which tapbench's interpolation follows."""
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            source = f.read().strip()
        flags = cpu_flags()
    except OSError as error:
        return f"cannot tell ({error})"
    if source != "tsc":
        return f"the kernel's clock source is {source}, not the TSC"
    missing = [flag for flag in ("constant_tsc", "nonstop_tsc") if flag not in flags]
    return f"the CPU lacks {', '.join(missing)}" if missing else None

PT_INTERP = 3  # the program header naming the dynamic loader

SYS_FUTEX, FUTEX_WAIT = 202, 0  # x86-64; a shared (not private) futex: the word is in a shared mapping

class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

def is_static_executable(program: str) -> bool:
    """Whether program is an ELF executable without a dynamic loader (PT_INTERP), which
    LD_PRELOAD can never reach. Anything else (a dynamic ELF, a #! script) loads the hook."""
    path = program if os.sep in program else (shutil.which(program) or program)
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if header[:5] != b"\x7fELF\x02":  # 64-bit ELF only: this backend is x86-64 only
                return False
            phoff, = struct.unpack_from("<Q", header, 0x20)
            entry_size, count = struct.unpack_from("<HH", header, 0x36)
            f.seek(phoff)
            table = f.read(entry_size * count)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * entry_size)[0] != PT_INTERP for i in range(count))

def mapped_paths() -> set[str]:
    paths = set()
    for process in psutil.process_iter():
        try:
            paths.update(m.path for m in process.memory_maps(grouped=True))
        except (psutil.Error, OSError):
            continue
    return paths
