"""Compile a bcc program once per process, load it at every start.

bcc compiles the C with clang at every BPF(): about 250 ms here, nearly all of an eBPF
backend's start-up. A run needs maps and a program of its own, not a compile of its own: the
bytecode is the same for every target but for the target's tgid, which the C compiles in as a
constant. So the C is compiled once, with SENTINEL_TGID in its place, and its bytecode kept.
Every start (the first one too) then creates maps like the ones bcc made, writes their
descriptors and the real tgid into a copy of that bytecode, and loads and attaches it: a
few ms, most of it the ring buffer's allocation. The kernel's verifier checks every load as
it did: only clang's work is reused, and no map or program outlives its run.

`compiled()` says whether it compiled, so that cold and warm start-ups are reported apart;
`forget_compiled()` makes the next start a cold one again.
"""
from __future__ import annotations

import ctypes
import os
import re
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from methods.base import ObserverError

# Stands for the target's tgid in the compiled bytecode. Above any pid_max (at most 2**22), so
# no real process has it, and a positive 32-bit value, so it fits any instruction's immediate.
SENTINEL_TGID = 0x3EADBEEF
INSTRUCTION_SIZE = 8
LOAD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW: two instruction slots, the second one's imm the high half
PSEUDO_MAP_FD = 1  # its src_reg when the immediate is a map's descriptor
BPF_PROG_TYPE_KPROBE = 2  # what bcc loads a uprobe program as
VERIFIER_LOG_BYTES = 1 << 20


@dataclass(frozen=True)
class MapSpec:
    name: bytes
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int


@dataclass(frozen=True)
class FunctionSpec:
    name: bytes
    prog_type: int
    instructions: bytes  # as bcc would load them: map descriptors are those of CompiledProgram.maps


@dataclass(frozen=True)
class CompiledProgram:
    functions: tuple[FunctionSpec, ...]
    maps: dict[int, MapSpec]  # by the descriptor the bytecode was compiled against
    license: bytes
    kern_version: int
    compile_ms: float


class _MapInfo(ctypes.Structure):  # the head of struct bpf_map_info (include/uapi/linux/bpf.h)
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("name", ctypes.c_char * 16)]


class _ProgInfo(ctypes.Structure):  # the head of struct bpf_prog_info
    _fields_ = [("type", ctypes.c_uint32)]


_compiled: dict[tuple, CompiledProgram] = {}


@lru_cache(maxsize=None)
def _lib():
    """libbcc, its missing declarations made once (every map, load and lookup goes through it)."""
    from bcc.libbcc import lib

    # Exported by libbcc but not declared by bcc's Python module.
    lib.bcc_create_map.restype = ctypes.c_int
    lib.bcc_create_map.argtypes = [ctypes.c_int, ctypes.c_char_p] + [ctypes.c_int] * 4
    lib.bcc_prog_load.restype = ctypes.c_int
    lib.bcc_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_uint, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    lib.bpf_obj_get_info.restype = ctypes.c_int
    lib.bpf_obj_get_info.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    return lib


def _error(result: int) -> str:
    # libbcc returns -errno from libbpf's calls, or -1 with errno set.
    return os.strerror(-result if result < -1 else ctypes.get_errno())


def _object_info(fd: int, info: ctypes.Structure) -> ctypes.Structure:
    length = ctypes.c_uint32(ctypes.sizeof(info))
    result = _lib().bpf_obj_get_info(fd, ctypes.byref(info), ctypes.byref(length))
    if result != 0:
        raise ObserverError(f"BPF object information not readable: {_error(result)}")
    return info


def _instructions(code: bytes):
    """(offset, opcode, src_reg, imm) of each instruction slot."""
    for offset in range(0, len(code), INSTRUCTION_SIZE):
        opcode, registers, _, imm = struct.unpack_from("<BBhi", code, offset)
        yield offset, opcode, registers >> 4, imm


def compiled(text: str, functions: dict[bytes, int] = {}, maps: tuple[bytes, ...] = (),
             check: Callable[[object], None] = lambda bpf: None,
             include: Path | None = None) -> tuple[CompiledProgram, bool]:
    """The bytecode of `text` (written with SENTINEL_TGID for the target), and whether this call
    compiled it. functions: those bcc does not load by itself (a uprobe's), with their program
    type; maps: those to create even where no bytecode uses them (a ring the consumer maps
    though the program was compiled to count only); check(bpf) looks at the compiled module
    before it is unloaded; include: a folder the text's #include "..." finds its headers in."""
    key = (text, tuple(sorted(functions.items())), maps)
    if key in _compiled:
        return _compiled[key], False
    from bcc import BPF

    started = time.monotonic()
    try:
        bpf = BPF(text=text.encode(), cflags=[f"-I{include}"] if include else [])
    except Exception as error:
        raise ObserverError(f"the BPF program did not compile or load: {error}") from None
    try:
        for name, prog_type in functions.items():
            bpf.load_func(name, prog_type)
        check(bpf)
        specs, map_fds = [], {_lib().bpf_table_fd(bpf.module, name) for name in maps}
        for name, function in bpf.funcs.items():
            code = bytes(bpf.dump_func(name))
            specs.append(FunctionSpec(name, _object_info(function.fd, _ProgInfo()).type, code))
            for offset, opcode, source, imm in _instructions(code):
                if opcode == LOAD_IMM64 and source not in (0, PSEUDO_MAP_FD):
                    raise ObserverError(f"{name.decode()}: a 64-bit load of kind {source} that cannot be relocated")
                if opcode == LOAD_IMM64 and source == PSEUDO_MAP_FD:
                    map_fds.add(imm)
        map_specs = {}
        for fd in map_fds:
            info = _object_info(fd, _MapInfo())
            map_specs[fd] = MapSpec(info.name, info.type, info.key_size, info.value_size, info.max_entries,
                                    info.map_flags)
        program = CompiledProgram(tuple(specs), map_specs, bytes(_lib().bpf_module_license(bpf.module)),
                                  _lib().bpf_module_kern_version(bpf.module),
                                  (time.monotonic() - started) * 1000)
    finally:
        bpf.cleanup()  # what bcc loaded and attached to compile: none of it is used
    _compiled[key] = program
    return program, True


def forget_compiled() -> None:
    """The next start compiles again: for measuring a cold start."""
    _compiled.clear()


class LoadedProgram:
    """One start's maps and programs, from a CompiledProgram, until close()."""

    def __init__(self, program: CompiledProgram, tgid: int | None) -> None:
        self.program = program
        self.map_fds: dict[bytes, int] = {}
        self.program_fds: dict[bytes, int] = {}
        self._perf_fds: list[int] = []  # tracepoint attachments: closed through libbcc
        self._link_fds: list[int] = []  # raw tracepoint attachments: closed like any fd
        self._uprobe_events: list[bytes] = []
        try:
            self._load(tgid)
        except BaseException:
            self.close()
            raise

    def _load(self, tgid: int | None) -> None:
        lib = _lib()
        by_compiled_fd = {}
        for compiled_fd, spec in self.program.maps.items():
            fd = lib.bcc_create_map(spec.map_type, spec.name, spec.key_size, spec.value_size,
                                    spec.max_entries, spec.flags)
            if fd < 0:
                raise ObserverError(f"BPF map {spec.name.decode()} not created: {_error(fd)}")
            self.map_fds[spec.name] = by_compiled_fd[compiled_fd] = fd
        for function in self.program.functions:
            code = bytearray(function.instructions)
            targets = 0
            for offset, opcode, source, imm in _instructions(function.instructions):
                if opcode == LOAD_IMM64 and source == PSEUDO_MAP_FD:
                    struct.pack_into("<i", code, offset + 4, by_compiled_fd[imm])
                elif imm == SENTINEL_TGID:
                    if tgid is None:
                        raise ObserverError("the BPF program was compiled for a tgid but none was given")
                    struct.pack_into("<i", code, offset + 4, tgid)
                    targets += 1
            if tgid is not None and targets == 0:
                raise ObserverError(f"{function.name.decode()}: the target's tgid is nowhere in the bytecode")
            fd = self._load_function(function, bytes(code))
            self.program_fds[function.name] = fd

    def _load_function(self, function: FunctionSpec, code: bytes) -> int:
        lib = _lib()
        buffer = ctypes.create_string_buffer(code)
        fd = lib.bcc_prog_load(function.prog_type, function.name, buffer, len(code), self.program.license,
                               self.program.kern_version, 0, None, 0)
        if fd >= 0:
            return fd
        # Again with the verifier's log, which says why.
        log = ctypes.create_string_buffer(VERIFIER_LOG_BYTES)
        lib.bcc_prog_load(function.prog_type, function.name, buffer, len(code), self.program.license,
                          self.program.kern_version, 1, log, VERIFIER_LOG_BYTES)
        last = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise ObserverError(f"BPF program {function.name.decode()} not loaded: {_error(fd)}: {' / '.join(last)}")

    def attach_tracepoints(self) -> None:
        """Attach every function named as bcc's TRACEPOINT_PROBE and RAW_TRACEPOINT_PROBE name
        theirs, as bcc does when it loads them."""
        lib = _lib()
        for name, fd in self.program_fds.items():
            if name.startswith(b"raw_tracepoint__"):
                link = lib.bpf_attach_raw_tracepoint(fd, name[len(b"raw_tracepoint__"):])
                if link < 0:
                    raise ObserverError(f"{name.decode()} not attached: {_error(link)}")
                self._link_fds.append(link)
            elif name.startswith(b"tracepoint__"):
                category, event = name[len(b"tracepoint__"):].split(b"__", 1)
                perf = lib.bpf_attach_tracepoint(fd, category, event)
                if perf < 0:
                    raise ObserverError(f"{name.decode()} not attached: {_error(perf)}")
                self._perf_fds.append(perf)

    def attach_uprobe(self, function: bytes, binary: str, symbol: str, symbol_offset: int, pid: int) -> None:
        """Attach `function` at `symbol`+`symbol_offset` in `binary`, for process `pid` only."""
        from bcc import BPF

        lib = _lib()
        path, address = BPF._check_path_symbol(binary.encode(), symbol.encode(), None, pid, symbol_offset)
        # Named as bcc names it (used only where the kernel lacks the uprobe PMU).
        event = b"p_%s_0x%x_%d" % (re.sub(rb"[^a-zA-Z0-9_]", b"_", path), address, pid)
        perf = lib.bpf_attach_uprobe(self.program_fds[function], 0, event, path, address, pid)
        if perf < 0:
            raise ObserverError(f"uprobe at {symbol}+{symbol_offset:#x} not attached: {_error(perf)}")
        self._perf_fds.append(perf)
        self._uprobe_events.append(event)

    def lookup(self, map_name: bytes, key: int, value_size: int) -> bytes:
        """The value under a u32 key, value_size bytes (for a per-CPU map: every CPU's)."""
        value = ctypes.create_string_buffer(value_size)
        index = ctypes.c_uint32(key)
        result = _lib().bpf_lookup_elem(self.map_fds[map_name], ctypes.byref(index), value)
        if result != 0:
            raise ObserverError(f"BPF map {map_name.decode()}[{key}] not readable: {_error(result)}")
        return value.raw

    def update(self, map_name: bytes, key: int, value: bytes) -> None:
        """Store value under a u32 key (BPF_ANY)."""
        index = ctypes.c_uint32(key)
        stored = ctypes.create_string_buffer(value, len(value))
        result = _lib().bpf_update_elem(self.map_fds[map_name], ctypes.byref(index), stored, 0)
        if result != 0:
            raise ObserverError(f"BPF map {map_name.decode()}[{key}] not writable: {_error(result)}")

    def close(self) -> None:
        """Detaches, then unloads programs and frees maps (the kernel does once their last
        descriptor is closed, which is also what happens if this process dies)."""
        lib = _lib()
        for perf in self._perf_fds:
            lib.bpf_close_perf_event_fd(perf)
        for event in self._uprobe_events:
            lib.bpf_detach_uprobe(event)
        for fd in self._link_fds + list(self.program_fds.values()) + list(self.map_fds.values()):
            os.close(fd)
        self._perf_fds, self._uprobe_events, self._link_fds = [], [], []
        self.program_fds, self.map_fds = {}, {}
