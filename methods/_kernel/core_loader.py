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

from methods.protocol import ObserverError, ObserverUnavailable

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
OBJECT = BPF_DIR / "write_events.core.o"
# What the object was built from (make writes the sha256 of these beside it): an object built
# from other sources is stale, and refused.
SOURCES = [BPF_DIR / "write_events.core.bpf.c", BPF_DIR / "write_events.h"]
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
# struct tapbench_options of write_events.core.bpf.c, field by field.
OPTIONS = struct.Struct("<IIQQIIQII")
PROGRAMS = (b"raw_sys_enter", b"tp_sys_enter_write", b"exec_hook")
VERIFIER_LOG_BYTES = 1 << 20


def sources_digest(sources: list[Path]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def unavailable_reason(built: Path | None = None, sources: list[Path] | None = None,
                       use: str = "use --loader bcc") -> str | None:
    """Why a CO-RE object `make` builds (the write hook's unless told) cannot be loaded here,
    in one line, or None. Its sources' sha256 is beside it (<object>.sha256)."""
    built, sources = built or OBJECT, sources or SOURCES
    if not KERNEL_BTF.exists():
        return f"this kernel exposes no BTF ({KERNEL_BTF}): {use}"
    if not built.exists():
        return f"{built} is not built: run `make build` (it needs clang, libbpf-dev and bpftool)"
    try:
        built_from = built.with_suffix(".o.sha256").read_text().split()[0]
    except (OSError, IndexError):
        built_from = None
    if built_from != sources_digest(sources):
        return f"{built.name} was built from other sources than bpf/ holds now: run `make build`"
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
        ("bpf_map_get_next_key", ctypes.c_int, [ctypes.c_int, pointer, pointer]),
    ]:
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    lib.libbpf_set_print(None)  # its messages need a va_list callback; errors are raised here instead
    return lib


def _failed(what: str) -> str:
    error = ctypes.get_errno()
    return f"{what}: {os.strerror(error) if error else 'failed'}"


class CoreObject:
    """A CO-RE object `make` built, opened, given its read-only options (one struct, packed by
    the caller), loaded with the programs `wanted` of `programs` and attached; its maps `maps`
    by descriptor. Closed, everything is detached and unloaded."""

    def __init__(self, built: Path, options: bytes, programs: tuple[bytes, ...], wanted: set[bytes],
                 maps: tuple[bytes, ...], max_entries: dict[bytes, int] | None = None):
        lib = _libbpf()
        self.built = built
        self.map_fds: dict[bytes, int] = {}
        self.program_fds: dict[bytes, int] = {}
        self._links: list[int] = []
        self._wanted, self._maps = wanted, maps
        self._log = ctypes.create_string_buffer(VERIFIER_LOG_BYTES)
        ctypes.set_errno(0)
        self._object = lib.bpf_object__open_file(str(built).encode(), None)
        if not self._object:
            raise ObserverError(_failed(f"libbpf could not open {built.name}"))
        try:
            self._set_options(lib, options)
            for name, entries in (max_entries or {}).items():
                found = lib.bpf_object__find_map_by_name(self._object, name)
                if not found or lib.bpf_map__set_max_entries(found, entries) != 0:
                    raise ObserverError(_failed(f"the size of {name.decode()} could not be set"))
            for name in programs:
                program = lib.bpf_object__find_program_by_name(self._object, name)
                if not program:
                    raise ObserverError(f"{built.name} has no program {name.decode()}: rebuild it (make build)")
                lib.bpf_program__set_autoload(program, name in wanted)
                lib.bpf_program__set_log_buf(program, self._log, VERIFIER_LOG_BYTES)
            self._load_and_attach(lib)
        except BaseException:
            self.close()
            raise

    def _set_options(self, lib, options: bytes) -> None:
        rodata = self._rodata(lib)
        size = ctypes.c_size_t()
        lib.bpf_map__initial_value(rodata, ctypes.byref(size))
        if size.value != len(options):
            raise ObserverError(f"{self.built.name} holds {size.value} bytes of read-only data, not the "
                                f"{len(options)} of its options alone: rebuild it (make build)")
        if lib.bpf_map__set_initial_value(rodata, options, len(options)) != 0:
            raise ObserverError(_failed(f"the options of {self.built.name} could not be set"))

    def _rodata(self, lib):
        """The `.rodata` map (libbpf names it after the object, cut short: `write_ev.rodata`)."""
        current = lib.bpf_object__next_map(self._object, None)
        while current:
            if lib.bpf_map__name(current).endswith(b".rodata"):
                return current
            current = lib.bpf_object__next_map(self._object, current)
        raise ObserverError(f"{self.built.name} has no read-only data for its options: rebuild it (make build)")

    def _load_and_attach(self, lib) -> None:
        ctypes.set_errno(0)
        result = lib.bpf_object__load(self._object)
        if result != 0:
            log = self._log.value.decode(errors="replace").strip().splitlines()
            raise ObserverError(f"libbpf could not load {self.built.name}: {os.strerror(-result)}"
                                + (f"; the verifier said: {log[-1]}" if log else ""))
        for name in self._maps:
            self.map_fds[name] = lib.bpf_map__fd(lib.bpf_object__find_map_by_name(self._object, name))
        for name in sorted(self._wanted):
            program = lib.bpf_object__find_program_by_name(self._object, name)
            self.program_fds[name] = lib.bpf_program__fd(program)
            ctypes.set_errno(0)
            link = lib.bpf_program__attach(program)
            if not link:
                raise ObserverError(_failed(f"{name.decode()} could not be attached"))
            self._links.append(link)

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


class CoreProgram(CoreObject):
    """The write hook's object with its options; the same interface as
    methods/_kernel/bpf_loader.py's LoadedProgram where methods/ebpf.py uses it (map_fds, lookup,
    update, program_fds, close)."""

    def __init__(self, *, target_tgid: int = 0, comm: tuple[int, int] | None = None, hook: str = "raw",
                 count_only: bool = False, submit_flags: int = 0, ring_bytes: int = 1 << 20, test_extra_ns: int = 0,
                 watched_fd: int = 1):
        reason = unavailable_reason()
        if reason:
            raise ObserverUnavailable(reason)
        low, high = comm or (0, 0)
        options = OPTIONS.pack(target_tgid, int(comm is not None), low, high, int(count_only), submit_flags,
                               test_extra_ns, watched_fd, 0)
        wanted = {b"raw_sys_enter" if hook == "raw" else b"tp_sys_enter_write"} | ({b"exec_hook"} if comm else set())
        super().__init__(OBJECT, options, PROGRAMS, wanted, (b"events", b"counters", b"watched"),
                         {b"events": ring_bytes})

    def attach_tracepoints(self) -> None:
        """Attached at load already (bcc's LoadedProgram attaches here)."""
