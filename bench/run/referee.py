"""The referee of `tapbench run -- CMD`: the kernel's own count of a program's write() calls to
the watched descriptor, independent of the technique under test (bpf/referee.core.bpf.c,
loaded by libbpf from the object `make` built, whatever the technique is: ptrace included).

It counts per process: the launched one and every process it forks, each under its own PID,
with the stamps of its first and last such write, taken at system-call entry. What a capture
is checked against, and what time per event is taken between. It is a hook of its own on
every write of every process (a tracepoint), so it is in every run, bare ones included, and
its cost is measured apart (bench/run/program.py).
"""
from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

from methods._kernel import core_loader
from methods.protocol import ObserverError, ObserverUnavailable

OBJECT = core_loader.BPF_DIR / "referee.core.o"
SOURCES = [core_loader.BPF_DIR / "referee.core.bpf.c"]
OPTIONS = struct.Struct("<II")  # struct referee_options
TALLY = struct.Struct("<QQQII")  # struct tally
PROGRAMS = (b"count_write", b"follow_fork")


def unavailable_reason() -> str | None:
    return core_loader.unavailable_reason(OBJECT, SOURCES, use="the referee of run -- CMD needs it")


@dataclass(frozen=True)
class Tally:
    """One process's writes to the watched descriptor, as the kernel counted them."""

    pid: int
    writes: int
    first_ns: int  # CLOCK_MONOTONIC at the first write's entry; 0: none
    last_ns: int
    parent: int  # the process of the tree it was forked from; 0 for the launched one


class Referee:
    """Loaded before the program is launched; watch(pid) before it is released."""

    def __init__(self, watched_fd: int):
        reason = unavailable_reason()
        if reason:
            raise ObserverUnavailable(reason)
        self.loaded = core_loader.CoreObject(OBJECT, OPTIONS.pack(watched_fd, 0), PROGRAMS, set(PROGRAMS),
                                             (b"tallies", b"untracked"))

    def watch(self, pid: int) -> None:
        self.loaded.update(b"tallies", pid, TALLY.pack(0, 0, 0, 0, 0))

    def tallies(self) -> dict[int, Tally]:
        """Every process of the tree, by PID."""
        lib, fd = core_loader._libbpf(), self.loaded.map_fds[b"tallies"]
        found: dict[int, Tally] = {}
        key, following = ctypes.c_uint32(), ctypes.c_uint32()
        value = ctypes.create_string_buffer(TALLY.size)
        at = None  # the first call asks for the first key
        while lib.bpf_map_get_next_key(fd, at, ctypes.byref(following)) == 0:
            key.value = following.value
            at = ctypes.byref(key)
            if lib.bpf_map_lookup_elem(fd, at, value) != 0:
                continue  # removed meanwhile: never, the referee deletes nothing
            writes, first_ns, last_ns, parent, _ = TALLY.unpack(value.raw)
            found[key.value] = Tally(key.value, writes, first_ns, last_ns, parent)
        if not found:
            raise ObserverError("the referee's map is empty: the launched process was never put in it")
        return found

    def untracked(self) -> int:
        """Processes of the tree that found the map full: their writes went uncounted."""
        return struct.unpack("<Q", self.loaded.lookup(b"untracked", 0, 8))[0]

    def close(self) -> None:
        self.loaded.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
