"""The eBPF write hook loaded the CO-RE way: the object `make` compiled from
bpf/write_events.core.bpf.c, relocated and loaded by libbpf (through ctypes over libbpf.so.1),
with no compiler and no kernel headers at run time, only the kernel's BTF. The hook's options
are read-only globals set before load; the ring buffer, counters and exec map are the same as
bcc's build, so methods/ebpf.py reads them the same way.

What libbpf 1.1's exports give and how they are used here: bpf_object__open_file, the options
written into the `.rodata` map's initial value (one struct, so no walking of BTF from ctypes),
bpf_map__set_max_entries for the ring's size, bpf_program__set_autoload to leave out the
programs a variant does not use, bpf_object__load, bpf_program__attach, bpf_map__fd.
libbpf_set_print takes a va_list callback ctypes cannot format: printing is off, and a failed
load says what the verifier said through bpf_program__set_log_buf.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import struct
from functools import lru_cache
from pathlib import Path

from methods.errors import ObserverError, ObserverUnavailable

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
OBJECT = BPF_DIR / "write_events.core.o"
# What the object was built from (make writes the sha256 of these beside it): an object built
# from other sources is stale, and refused.
SOURCES = [BPF_DIR / "write_events.core.bpf.c", BPF_DIR / "write_events.h"]
STAMP = OBJECT.with_suffix(".o.sha256")
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
# struct tapbench_options of write_events.core.bpf.c, field by field.
OPTIONS = struct.Struct("<IIQQIIQ")
PROGRAMS = (b"raw_sys_enter", b"tp_sys_enter_write", b"exec_hook")
VERIFIER_LOG_BYTES = 1 << 20


def sources_digest() -> str:
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def unavailable_reason() -> str | None:
    """Why the CO-RE object cannot be loaded here, in one line, or None."""
    if not KERNEL_BTF.exists():
        return f"this kernel exposes no BTF ({KERNEL_BTF}): use --loader bcc"
    if not OBJECT.exists():
        return f"{OBJECT} is not built: run `make build` (it needs clang, libbpf-dev and bpftool)"
    try:
        built_from = STAMP.read_text().split()[0]
    except (OSError, IndexError):
        built_from = None
    if built_from != sources_digest():
        return f"{OBJECT.name} was built from other sources than bpf/ holds now: run `make build`"
    try:
        _libbpf()
    except OSError as error:
        return f"libbpf.so.1 cannot be loaded ({error}): install libbpf1"
    return None


@lru_cache(maxsize=None)
def _libbpf():
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    pointer = ctypes.c_void_p
    for name, restype, argtypes in [
        ("libbpf_set_print", pointer, [pointer]),
        ("bpf_object__open_file", pointer, [ctypes.c_char_p, pointer]),
        ("bpf_object__load", ctypes.c_int, [pointer]),
        ("bpf_object__close", None, [pointer]),
        ("bpf_object__find_map_by_name", pointer, [pointer, ctypes.c_char_p]),
        ("bpf_object__find_program_by_name", pointer, [pointer, ctypes.c_char_p]),
        ("bpf_object__next_map", pointer, [pointer, pointer]),
        ("bpf_map__name", ctypes.c_char_p, [pointer]),
        ("bpf_map__fd", ctypes.c_int, [pointer]),
        ("bpf_map__set_max_entries", ctypes.c_int, [pointer, ctypes.c_uint32]),
        ("bpf_map__initial_value", pointer, [pointer, ctypes.POINTER(ctypes.c_size_t)]),
        ("bpf_map__set_initial_value", ctypes.c_int, [pointer, pointer, ctypes.c_size_t]),
        ("bpf_program__set_autoload", ctypes.c_int, [pointer, ctypes.c_bool]),
        ("bpf_program__set_log_buf", ctypes.c_int, [pointer, ctypes.c_char_p, ctypes.c_size_t]),
        ("bpf_program__attach", pointer, [pointer]),
        ("bpf_program__fd", ctypes.c_int, [pointer]),
        ("bpf_link__destroy", ctypes.c_int, [pointer]),
        ("bpf_map_lookup_elem", ctypes.c_int, [ctypes.c_int, pointer, pointer]),
        ("bpf_map_update_elem", ctypes.c_int, [ctypes.c_int, pointer, pointer, ctypes.c_uint64]),
    ]:
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    lib.libbpf_set_print(None)  # its messages need a va_list callback; errors are raised here instead
    return lib


def _failed(what: str) -> str:
    error = ctypes.get_errno()
    return f"{what}: {os.strerror(error) if error else 'failed'}"


class CoreProgram:
    """The CO-RE object opened, given its options, loaded and attached; the same interface as
    methods/bpf_loader.py's LoadedProgram where methods/ebpf.py uses it (map_fds, lookup,
    update, program_fds, close)."""

    def __init__(self, *, target_tgid: int = 0, comm: tuple[int, int] | None = None, hook: str = "raw",
                 count_only: bool = False, submit_flags: int = 0, ring_bytes: int = 1 << 20, test_extra_ns: int = 0):
        reason = unavailable_reason()
        if reason:
            raise ObserverUnavailable(reason)
        lib = _libbpf()
        self.map_fds: dict[bytes, int] = {}
        self.program_fds: dict[bytes, int] = {}
        self._links: list[int] = []
        self._log = ctypes.create_string_buffer(VERIFIER_LOG_BYTES)
        ctypes.set_errno(0)
        self._object = lib.bpf_object__open_file(str(OBJECT).encode(), None)
        if not self._object:
            raise ObserverError(_failed(f"libbpf could not open {OBJECT.name}"))
        try:
            self._configure(lib, target_tgid, comm, hook, count_only, submit_flags, ring_bytes, test_extra_ns)
            self._load_and_attach(lib)
        except BaseException:
            self.close()
            raise

    def _configure(self, lib, target_tgid, comm, hook, count_only, submit_flags, ring_bytes, test_extra_ns) -> None:
        rodata = self._rodata(lib)
        low, high = comm or (0, 0)
        options = OPTIONS.pack(target_tgid, int(comm is not None), low, high, int(count_only), submit_flags,
                               test_extra_ns)
        size = ctypes.c_size_t()
        lib.bpf_map__initial_value(rodata, ctypes.byref(size))
        if size.value != OPTIONS.size:
            raise ObserverError(f"{OBJECT.name} holds {size.value} bytes of read-only data, not the {OPTIONS.size} "
                                "of its options alone: rebuild it (make build)")
        if lib.bpf_map__set_initial_value(rodata, options, OPTIONS.size) != 0:
            raise ObserverError(_failed("the hook's options could not be set"))
        events = lib.bpf_object__find_map_by_name(self._object, b"events")
        if not events or lib.bpf_map__set_max_entries(events, ring_bytes) != 0:
            raise ObserverError(_failed("the ring buffer's size could not be set"))
        wanted = {b"raw_sys_enter" if hook == "raw" else b"tp_sys_enter_write"} | ({b"exec_hook"} if comm else set())
        for name in PROGRAMS:
            program = lib.bpf_object__find_program_by_name(self._object, name)
            if not program:
                raise ObserverError(f"{OBJECT.name} has no program {name.decode()}: rebuild it (make build)")
            lib.bpf_program__set_autoload(program, name in wanted)
            lib.bpf_program__set_log_buf(program, self._log, VERIFIER_LOG_BYTES)
        self._wanted = wanted

    def _rodata(self, lib):
        """The `.rodata` map (libbpf names it after the object, cut short: `write_ev.rodata`)."""
        current = lib.bpf_object__next_map(self._object, None)
        while current:
            if lib.bpf_map__name(current).endswith(b".rodata"):
                return current
            current = lib.bpf_object__next_map(self._object, current)
        raise ObserverError(f"{OBJECT.name} has no read-only data for its options: rebuild it (make build)")

    def _load_and_attach(self, lib) -> None:
        ctypes.set_errno(0)
        result = lib.bpf_object__load(self._object)
        if result != 0:
            log = self._log.value.decode(errors="replace").strip().splitlines()
            raise ObserverError(f"libbpf could not load {OBJECT.name}: {os.strerror(-result)}"
                                + (f"; the verifier said: {log[-1]}" if log else ""))
        for name in (b"events", b"counters", b"watched"):
            self.map_fds[name] = lib.bpf_map__fd(lib.bpf_object__find_map_by_name(self._object, name))
        for name in sorted(self._wanted):
            program = lib.bpf_object__find_program_by_name(self._object, name)
            self.program_fds[name] = lib.bpf_program__fd(program)
            ctypes.set_errno(0)
            link = lib.bpf_program__attach(program)
            if not link:
                raise ObserverError(_failed(f"{name.decode()} could not be attached"))
            self._links.append(link)

    def attach_tracepoints(self) -> None:
        """Attached at load already (bcc's LoadedProgram attaches here)."""

    def lookup(self, map_name: bytes, key: int, value_size: int) -> bytes:
        value = ctypes.create_string_buffer(value_size)
        index = ctypes.c_uint32(key)
        if _libbpf().bpf_map_lookup_elem(self.map_fds[map_name], ctypes.byref(index), value) != 0:
            raise ObserverError(_failed(f"BPF map {map_name.decode()}[{key}] not readable"))
        return value.raw

    def update(self, map_name: bytes, key: int, value: bytes) -> None:
        index = ctypes.c_uint32(key)
        stored = ctypes.create_string_buffer(value, len(value))
        if _libbpf().bpf_map_update_elem(self.map_fds[map_name], ctypes.byref(index), stored, 0) != 0:
            raise ObserverError(_failed(f"BPF map {map_name.decode()}[{key}] not writable"))

    def close(self) -> None:
        """Detach, then unload and free everything (the kernel does so as well if this process
        dies: its descriptors go)."""
        lib = _libbpf()
        for link in self._links:
            lib.bpf_link__destroy(link)
        self._links = []
        if self._object:
            lib.bpf_object__close(self._object)
            self._object = None
        self.map_fds, self.program_fds = {}, {}
