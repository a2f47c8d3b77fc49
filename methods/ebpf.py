"""eBPF observer (bcc): a program on a syscall hook copies each write() to a ring buffer.

The BPF C lives in bpf/write_events.bpf.c and is specialised with #defines, never edited as text.
Two hooks are offered, both measured by `tapbench run --hook`:
  raw         raw tracepoint sys_enter, filtered on the write syscall number (the default:
              it measured cheaper per move than the tracepoint, see results/README.md)
  tracepoint  syscalls:sys_enter_write, the article's choice
"""
from __future__ import annotations

import ctypes
import os
import platform
import select
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from methods._kernel import core_loader  # noqa: F401 (the module: its OBJECT and unavailable_reason)
from methods._kernel.core_loader import CoreProgram
from methods._kernel.bpf_loader import SENTINEL_TGID, LoadedProgram, compiled
from methods.base import Observer, ObserverError
from methods import options as shared
from methods.options import LIVE_SPIN_US, Options, option
from methods.protocol import CAPTURE_BYTES, WATCHED_FD
from methods._kernel.process import (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAPABILITY_NAMES, SKIP_CAPABILITY_PRECHECK,
                             effective_capabilities, find_pid_by_name)
from methods._kernel.bpf_system import bpf_program_leftovers, bpf_program_run_stats
from methods._kernel.bpf_ring import PAGE_SIZE, SAMPLE_SIZE, RingReader
from methods._kernel.rings import RingConsumer
from methods.spec import SweepSpec, claim

BPF_SOURCE = Path(__file__).resolve().parent.parent / "bpf" / "write_events.bpf.c"
HOOKS = ("raw", "tracepoint")
DEFAULT_HOOK = "raw"
# Not a choice of this backend: the uprobe backend (methods/uprobe.py) loads the same C with it.
GO_UPROBE_HOOK = "go-uprobe"
# How the kernel tells the consumer about new events (the submit flags of bpf_ringbuf_submit):
#   adaptive  wake the consumer only if it had caught up, so a busy ring costs no wakeups
#   poll      never wake it; the consumer drains every --poll-ms, trading latency for cost
WAKEUPS = {"adaptive": "0", "poll": "BPF_RB_NO_WAKEUP"}
WAKEUP_FLAGS = {"adaptive": 0, "poll": 1}  # the same as numbers, for the CO-RE object's options
# bcc: clang compiles the C in this process; core: libbpf loads the object `make` built
# (methods/_kernel/core_loader.py)
LOADERS = ("bcc", "core")
# How the write hook knows the target's writes:
#   pid   its tgid, a constant compiled into the program (the default: nothing to look up)
#   exec  a one-entry map that a sched_process_exec program fills when the program starts: what
#         `watch --name --wait` needs; offered for launched runs so the lookup's cost is measured
MATCHES = ("pid", "exec")
COMM_LENGTH = 15  # TASK_COMM_LEN - 1
EXEC_POLL_S = 0.001  # how often the map the exec program fills is read while waiting
# The raw hook reads the arguments from x86-64 pt_regs, and RingReader relies on x86-64 memory
# ordering, so this backend is x86-64 only.
SYSCALL_WRITE_NR = {"x86_64": 1}
TRACEFS = Path("/sys/kernel/tracing")
SWEEP_OPTIONS = {"hook": "raw", "wakeup": "poll"}  # the variant the sweep measures


def kernel_headers_dir() -> Path:
    return Path("/lib/modules") / platform.release() / "build"


@dataclass(frozen=True)
class EbpfOptions(Options):
    hook: str = option(DEFAULT_HOOK, "syscall hook", choices=HOOKS)
    # poll, the default, measured the lower overhead per move (no wakeup work in the target's
    # write path), and with a consumer that drains a batch in tens of µs the latency stays sub-ms.
    wakeup: str = shared.wakeup()
    poll_ms: int = shared.poll_ms()
    ring_mb: int = shared.ring_mb()
    capture: str | None = shared.capture()
    spin_us: int = shared.spin_us()
    match: str = option("pid", "how the hook knows the target: pid, compiled in (default); exec, a map filled "
                               "when the program starts, as watch --name --wait does (launched runs only)",
                        choices=MATCHES)
    loader: str = option("bcc", "bcc: clang compiles the C against kernel headers at the first start in a "
                                "process; core: libbpf loads the object `make` built, relocated with the "
                                "kernel's BTF (no compiler or headers at run time)", choices=LOADERS)


def possible_cpus() -> int:
    """How many CPUs a per-CPU map holds a value for: the kernel's possible CPUs ("0-1,4")."""
    count = 0
    for part in Path("/sys/devices/system/cpu/possible").read_text().strip().split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def comm_words(program: str) -> tuple[int, int]:
    """A program's kernel name (15 characters and a NUL, padded) as the two little-endian
    words the exec hook compares with."""
    name = program.encode()[:COMM_LENGTH]  # the kernel keeps 15 characters and a NUL
    if not name:
        raise ObserverError("cannot wait for a program with an empty name")
    low, high = struct.unpack("<QQ", name.ljust(16, b"\0"))
    return low, high


def text_for(tgid: int | str, options: Options = EbpfOptions(), watched_fd: int = WATCHED_FD) -> str:
    """The BPF C as compiled for this target: #defines, then bpf/write_events.bpf.c. tgid: the
    process to watch, or the name of a program not started yet, caught when it execs. options:
    the eBPF backend's or the uprobe's (which names its own hook)."""
    hook, ring_mb, capture = options.hook, options.ring_mb, options.capture
    if isinstance(tgid, str):
        low, high = comm_words(tgid)
        target = {"TARGET_COMM_LO": f"{low:#x}ULL", "TARGET_COMM_HI": f"{high:#x}ULL"}
    else:
        target = {"TARGET_TGID": tgid}
    defines = {
        **target,
        "WATCHED_FD": watched_fd,
        "CAPTURE_BYTES": CAPTURE_BYTES,
        "RINGBUF_PAGES": ring_mb * 1024 * 1024 // PAGE_SIZE,
        "SUBMIT_FLAGS": WAKEUPS[options.wakeup],
        "SYSCALL_WRITE_NR": SYSCALL_WRITE_NR.get(platform.machine(), -1),
    }
    if hook == "raw":
        defines["HOOK_RAW_SYS_ENTER"] = 1
    elif hook == GO_UPROBE_HOOK:
        defines["HOOK_GO_UPROBE"] = 1
    if capture == "count":
        defines["CAPTURE_COUNT_ONLY"] = 1
    if os.environ.get(BPF_EXTRA_WORK_VARIABLE):  # test-only: the gate's power benchmark (bench/gate/power.py)
        defines["TEST_EXTRA_NS"] = int(os.environ[BPF_EXTRA_WORK_VARIABLE])
    header = "".join(f"#define {name} {value}\n" for name, value in defines.items())
    return header + BPF_SOURCE.read_text()


# Test-only: busy work (ns) the BPF program adds to every write it records, so that the gate's
# power benchmark can make this layer dearer; unset, the program is what it always is.
BPF_EXTRA_WORK_VARIABLE = "TAPBENCH_TEST_BPF_EXTRA_NS"


class EbpfObserver(RingConsumer, Observer):
    method = "ebpf"
    live_options = {"wakeup": "adaptive"}
    live_spin_us = LIVE_SPIN_US
    can_catch_exec = True
    can_attach = True
    description = "BPF program on a syscall hook (bcc or CO-RE), events through a BPF ring buffer"
    article_name = "eBPF tracepoint"
    dependence = ("--loader bcc: clang compiles the program against kernel headers (here the distribution's "
                  "headers linked in for a kernel without its own) at the first start in a process; "
                  "--loader core: the kernel's BTF and libbpf, the object built once by make; both: "
                  "tracefs, x86-64 system-call numbers")
    loss_source = "kernel counter"
    # the raw hook and polling, written out: the results name the variant so
    sweep = SweepSpec(
        options=SWEEP_OPTIONS, primary_group="ebpf",
        # the article's tracepoint and the raw hook, with each loader: what the kernel refuses an
        # unprivileged user is told apart by hook and by loader
        more={"privileges": (SWEEP_OPTIONS | {"hook": "tracepoint"}, SWEEP_OPTIONS | {"loader": "core"},
                             SWEEP_OPTIONS | {"hook": "tracepoint", "loader": "core"}),
              # what a new watch process loads: the CO-RE object
              **{probe: (SWEEP_OPTIONS | {"loader": "core"},) for probe in ("attach", "attach privileges", "exec")},
              "bystanders": (SWEEP_OPTIONS | {"hook": "tracepoint"},),
              "bystanders, another program": (SWEEP_OPTIONS, SWEEP_OPTIONS | {"hook": "tracepoint"}),
              "bpf_profile": (SWEEP_OPTIONS, SWEEP_OPTIONS | {"capture": "count"}, SWEEP_OPTIONS | {"match": "exec"},
                              SWEEP_OPTIONS | {"hook": "tracepoint"}, SWEEP_OPTIONS | {"hook": "tracepoint", "capture": "count"}),
              "cold_starts": (SWEEP_OPTIONS, SWEEP_OPTIONS | {"loader": "core"})})
    claims = (
        # The article's program is the sys_enter_write tracepoint; its ~80 ns is about that.
        claim("overhead_ns", "~80 ns", 80, hook="tracepoint"),
        claim("ceiling_per_s", "20,000 moves/s on one core", 20_000),
        claim("intrusiveness", "zero (target unmodified)"),
        # the article's consumer attaches to the sys_enter_write tracepoint: judged on that hook
        claim("privileges", "CAP_BPF + CAP_PERFMON suffice", hook="tracepoint"),
        # CO-RE is the libbpf loader's way (bcc compiles against headers): about that variant
        claim("kernel_dependence", "weak (CO-RE), Linux 5.15+", loader="core"),
    )
    # Functions bcc does not load by itself, with their program type (the uprobe's).
    extra_functions: dict[bytes, int] = {}
    Options = EbpfOptions
    options: EbpfOptions

    def __init__(self, **options) -> None:
        super().__init__(**options)
        chosen = self.options
        self.loader, self.hook, self.match, self.capture = chosen.loader, chosen.hook, chosen.match, chosen.capture
        self.ring_mb, self.wakeup, self.poll_ms = chosen.ring_mb, chosen.wakeup, chosen.poll_ms
        self._program_name: str | None = None  # what a launched target will exec, for match=exec
        self.loaded: LoadedProgram | None = None
        self.compiled_at_start: bool | None = None  # False: the bytecode of an earlier start, reused
        self._ring: RingReader | None = None
        self._wakeups: select.epoll | None = None
        self.kernel_matched = 0

    @classmethod
    def watch_options(cls) -> dict[str, object]:
        # A watch is a new process: bcc would compile (about 0.3 s); the CO-RE object loads at once.
        return {"loader": "core"} if "loader" in cls.cli_options and core_loader.unavailable_reason() is None else {}

    @classmethod
    def program_text(cls, pid: int, **options) -> str:
        chosen = cls.Options.of(options)
        if chosen.loader == "core":
            raise ObserverError("--ebpf prints the C bcc compiles; --loader core loads "
                                f"{core_loader.OBJECT.name}, built by make from bpf/write_events.core.bpf.c")
        if chosen.match == "exec":  # its text holds the name of the program it waits for: not known here
            raise ObserverError("--ebpf shows the --match pid program; with --match exec the same C is "
                                "compiled with the program's name instead of a PID (TARGET_COMM_LO/HI)")
        return text_for(pid, chosen)

    @classmethod
    def leftovers(cls) -> set[str]:
        return bpf_program_leftovers()

    def facts(self) -> dict:
        # Runs and run time of each program (both 0 unless BPF statistics are on:
        # `tapbench run --bpf-stats` and the sweep's profile turn them on).
        programs = {} if self.loaded is None else {
            name.decode(): bpf_program_run_stats(fd) for name, fd in self.loaded.program_fds.items()}
        compiling = self.loaded is not None and self.loader == "bcc"
        return {"kernel_matched": self.kernel_matched, "match": self.match, "programs": programs,
                "loader": self.loader,
                "batches_caught_spinning": self.caught_spinning, "compiled_at_start": self.compiled_at_start,
                "compile_ms": self.loaded.program.compile_ms if compiling else None}

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        chosen = cls.Options.of(options)
        loader, hook, match = chosen.loader, chosen.hook, chosen.match
        if platform.machine() not in SYSCALL_WRITE_NR:
            return f"eBPF backend supports {', '.join(SYSCALL_WRITE_NR)}, not {platform.machine()}"
        held = effective_capabilities()
        if CAP_SYS_ADMIN not in held and not {CAP_BPF, CAP_PERFMON} <= held \
                and not os.environ.get(SKIP_CAPABILITY_PRECHECK):
            missing = " and ".join(CAPABILITY_NAMES[c] for c in (CAP_BPF, CAP_PERFMON) if c not in held)
            return (f"eBPF needs CAP_BPF and CAP_PERFMON (missing {missing}): run with sudo, "
                    "or grant those two")
        if loader == "core":
            reason = core_loader.unavailable_reason()
            if reason:
                return reason
        else:
            try:
                import bcc  # noqa: F401
            except ImportError:
                return ("bcc is not importable: install Debian's python3-bpfcc and use a virtualenv "
                        "made with --system-site-packages (`sudo make setup` does both), or use --loader core")
            if not kernel_headers_dir().exists():
                return (f"no kernel headers at {kernel_headers_dir()}: bcc needs them to compile (use --loader "
                        "core, which does not); `sudo make setup` installs the distribution's headers and links "
                        "them there")
        # Only an ordinary tracepoint is found through tracefs (its id file): the raw tracepoint
        # and the uprobe attach with bpf() and perf_event_open() alone.
        if hook != "tracepoint" and match != "exec":
            return None
        try:
            mounted = (TRACEFS / "events").is_dir()
        except PermissionError:
            if os.environ.get(SKIP_CAPABILITY_PRECHECK):
                return None  # the probes of least privilege: the kernel's open() decides
            return (f"{TRACEFS} is not readable by uid {os.geteuid()}: the tracepoint hooks need tracefs (mode 700, "
                    "root's); --hook raw needs none")
        if not mounted:
            return f"tracefs is not mounted at {TRACEFS}: mount -t tracefs tracefs {TRACEFS}"
        return None

    def launch(self, argv, **kwargs):
        # The kernel names a process after the file it execs, cut to 15 characters.
        self._program_name = os.path.basename(os.fspath(argv[0]))
        return super().launch(argv, **kwargs)

    def _observe(self, pid: int) -> None:
        if self.match == "exec":
            if self._program_name is None:
                raise ObserverError("--match exec finds a program as it starts: launch it, or use "
                                    "watch --name NAME --wait SECONDS")
            # The gate shell execs the program in place, so it is caught under the same PID.
            self._load(self._program_name)
        else:
            self._load(pid)
        self._attach_program(pid)
        self._wakeups.register(self._pidfd, select.EPOLLIN)

    def _load(self, target: int | str) -> None:
        """target: the tgid to watch, or the name of a program to catch at exec. bcc compiles
        the C the first time in this process (it prints compiler noise to stderr; a failure
        still raises); every start loads the bytecode into maps of its own (methods/_kernel/bpf_loader.py).
        The CO-RE loader loads the object make built, with the target in its options."""
        if self.loader == "core":
            comm = None if isinstance(target, int) else comm_words(target)
            self.loaded = CoreProgram(target_tgid=target if isinstance(target, int) else 0, comm=comm,
                                      hook=self.hook, count_only=self.capture == "count",
                                      submit_flags=WAKEUP_FLAGS[self.wakeup], ring_bytes=self.ring_mb * 1024 * 1024,
                                      test_extra_ns=int(os.environ.get(BPF_EXTRA_WORK_VARIABLE) or 0),
                                      watched_fd=self.watched_fd)
        else:
            text = text_for(SENTINEL_TGID if isinstance(target, int) else target, self.options, self.watched_fd)
            program, self.compiled_at_start = compiled(text, self.extra_functions, (b"events", b"counters"),
                                                        check=_check_event_layout, include=BPF_SOURCE.parent)
            self.loaded = LoadedProgram(program, target if isinstance(target, int) else None)
        self.loaded.attach_tracepoints()
        ring_fd = self.loaded.map_fds[b"events"]
        self._ring = RingReader(ring_fd, self.ring_mb * 1024 * 1024)
        # One wait for both: new events (the ring's fd is readable when it holds data and the
        # kernel chose to wake us) and the target's exit (its pidfd, registered once known).
        self._wakeups = select.epoll()
        self._wakeups.register(ring_fd, select.EPOLLIN)

    def attach_at_exec(self, name: str, timeout_s: float, armed=lambda: None) -> int:
        """Watch the first process that execs a program named `name`, from its first write:
        the program is in place before the process exists. armed() is called once it is;
        returns the process's PID."""
        self._load(name)
        armed()
        # A process that started after the caller last looked and before the hook was armed
        # was never seen at exec: look once more, now that any later one will be. It is
        # watched from now on (its PID written where the exec hook would have), and said late.
        try:
            running = find_pid_by_name(name)
        except ObserverError as error:
            if "no running process" not in str(error):
                raise
            running = None
        if running is not None and not struct.unpack("<I", self.loaded.lookup(b"watched", 0, 4))[0]:
            self.loaded.update(b"watched", 0, struct.pack("<I", running))
            self.came_late = (f"found PID {running} running once the exec hook was armed: what it wrote "
                              "before is missed")
        deadline = time.monotonic() + timeout_s
        while not (tgid := struct.unpack("<I", self.loaded.lookup(b"watched", 0, 4))[0]):
            if time.monotonic() > deadline:
                raise ObserverError(f"no process named {name!r} started within {timeout_s:g} s")
            time.sleep(EXEC_POLL_S)
        self.pid = tgid
        try:
            self._pidfd = os.pidfd_open(tgid)
        except ProcessLookupError:
            self._pidfd = None  # it has already exited: what it wrote is in the ring
        if self._pidfd is not None:
            self._wakeups.register(self._pidfd, select.EPOLLIN)
        return tgid

    def _attach_program(self, pid: int) -> None:
        """TRACEPOINT_PROBE and RAW_TRACEPOINT_PROBE attach themselves when the program loads;
        a backend whose program must be attached by hand (a uprobe) does it here."""

    def batches(self) -> Iterator[np.ndarray]:
        yield from self._drain_batches(lambda: self._ring.read(lambda records: self._event_batch(records, "pid")),
                                       lambda: self._wakeups.poll(self.poll_ms / 1000), self._ring.pending)
        self._read_kernel_counters()

    def _read_kernel_counters(self) -> None:
        self.kernel_matched = self._counter(0)
        self.counters.lost = self._counter(1)
        if self.capture == "count":
            self.counters.counted = self.kernel_matched

    def close(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self.loaded is not None:
            self.loaded.close()  # detaches the hook, unloads the program, frees the ring
            self.loaded = None
        super().close()

    def _counter(self, slot: int) -> int:
        """A slot of the per-CPU `counters` array, summed over the CPUs."""
        cpus = possible_cpus()
        return sum(struct.unpack(f"<{cpus}Q", self.loaded.lookup(b"counters", slot, 8 * cpus)))


def _check_event_layout(bpf) -> None:
    """Compares struct move_event as bcc derives it from the C with RECORD."""
    from bcc.table import _get_event_class

    derived = ctypes.sizeof(_get_event_class(bpf[b"events"]))
    if derived != SAMPLE_SIZE:
        raise ObserverError(f"struct move_event is {derived} bytes in C but {SAMPLE_SIZE} in "
                            "methods/_kernel/bpf_ring.py: update RECORD")
