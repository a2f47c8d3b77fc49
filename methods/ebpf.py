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
import struct
from pathlib import Path
from typing import Iterator

from methods.base import WATCHED_FD, MoveEvent, Observer, ObserverError, monotonic_ns
from bench.truth import CAPTURE_BYTES

BPF_SOURCE = Path(__file__).resolve().parent.parent / "bpf" / "write_events.bpf.c"
HOOKS = ("raw", "tracepoint")
DEFAULT_HOOK = "raw"
# How the kernel tells the consumer about new events (the submit flags of bpf_ringbuf_submit):
#   adaptive  wake the consumer only if it had caught up, so a busy ring costs no wakeups
#   poll      never wake it; the consumer drains every --poll-ms, trading latency for cost
WAKEUPS = {"adaptive": "0", "poll": "BPF_RB_NO_WAKEUP"}
SYSCALL_WRITE_NR = {"x86_64": 1, "aarch64": 64}
TRACEFS = Path("/sys/kernel/tracing")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# Mirror of struct move_event; _check_event_layout() checks it against the layout bcc derives from
# the C declaration, so the two cannot drift apart silently.
EVENT = struct.Struct(f"<QIIQII{CAPTURE_BYTES}s")


def kernel_headers_dir() -> Path:
    return Path("/lib/modules") / platform.release() / "build"


def check_options(hook: str, ring_mb: int, wakeup: str, poll_ms: int) -> None:
    if hook not in HOOKS:
        raise ObserverError(f"unknown eBPF hook {hook!r}; choose one of {', '.join(HOOKS)}")
    ring_pages = ring_mb * 1024 * 1024 // PAGE_SIZE
    if ring_mb < 1 or ring_pages & (ring_pages - 1):
        raise ObserverError(f"--ring-mb must be a power of two, at least 1; got {ring_mb}")
    if wakeup not in WAKEUPS:
        raise ObserverError(f"unknown wakeup policy {wakeup!r}; choose one of {', '.join(WAKEUPS)}")
    if not 1 <= poll_ms <= 1000:
        raise ObserverError(f"--poll-ms must be between 1 and 1000, got {poll_ms}")


def text_for(tgid: int, hook: str = DEFAULT_HOOK, ring_mb: int = 64, wakeup: str = "adaptive",
             poll_ms: int = 10) -> str:
    """The BPF C as compiled for this target: #defines, then bpf/write_events.bpf.c."""
    check_options(hook, ring_mb, wakeup, poll_ms)
    defines = {
        "TARGET_TGID": tgid,
        "WATCHED_FD": WATCHED_FD,
        "CAPTURE_BYTES": CAPTURE_BYTES,
        "RINGBUF_PAGES": ring_mb * 1024 * 1024 // PAGE_SIZE,
        "SUBMIT_FLAGS": WAKEUPS[wakeup],
        "SYSCALL_WRITE_NR": SYSCALL_WRITE_NR.get(platform.machine(), -1),
    }
    if hook == "raw":
        defines["HOOK_RAW_SYS_ENTER"] = 1
    header = "".join(f"#define {name} {value}\n" for name, value in defines.items())
    return header + BPF_SOURCE.read_text()


class EbpfObserver(Observer):
    method = "ebpf"
    can_attach = True
    description = "bcc program on a syscall hook, events through a BPF ring buffer"

    def __init__(self, hook: str = DEFAULT_HOOK, ring_mb: int = 64, wakeup: str = "adaptive",
                 poll_ms: int = 10) -> None:
        check_options(hook, ring_mb, wakeup, poll_ms)
        super().__init__()
        self.hook, self.ring_mb, self.wakeup, self.poll_ms = hook, ring_mb, wakeup, poll_ms
        self.bpf = None
        self.kernel_matched = 0
        self._received: list[tuple[bytes, int]] = []

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if platform.machine() not in SYSCALL_WRITE_NR:
            return f"eBPF backend supports {', '.join(SYSCALL_WRITE_NR)}, not {platform.machine()}"
        if os.geteuid() != 0:
            return "eBPF needs root (or CAP_BPF + CAP_PERFMON): run with sudo"
        try:
            import bcc  # noqa: F401
        except ImportError:
            return ("bcc is not importable: install Debian's python3-bpfcc and use a virtualenv "
                    "made with --system-site-packages (`sudo make setup` does both)")
        if not kernel_headers_dir().exists():
            return (f"no kernel headers at {kernel_headers_dir()}: bcc needs them to compile; "
                    "`sudo make setup` installs the distribution's headers and links them there")
        if not (TRACEFS / "events").is_dir():
            return f"tracefs is not mounted at {TRACEFS}: mount -t tracefs tracefs {TRACEFS}"
        return None

    def _observe(self, pid: int) -> None:
        from bcc import BPF

        # bcc prints compiler noise to stderr; a failure still raises and is reported below.
        try:
            self.bpf = BPF(text=text_for(pid, self.hook, self.ring_mb, self.wakeup).encode())
        except Exception as error:
            raise ObserverError(f"the BPF program did not compile or load: {error}") from None
        self._check_event_layout()
        # TRACEPOINT_PROBE and RAW_TRACEPOINT_PROBE attach themselves when the program loads.
        self.bpf[b"events"].open_ring_buffer(self._on_event)

    def _check_event_layout(self) -> None:
        from bcc.table import _get_event_class

        derived = ctypes.sizeof(_get_event_class(self.bpf[b"events"]))
        if derived != EVENT.size:
            raise ObserverError(f"struct move_event is {derived} bytes in C but {EVENT.size} in "
                                "methods/ebpf.py: update EVENT")

    def _on_event(self, _ctx, data, size) -> int:
        # Runs once per event inside bcc's poll: keep it to a copy and a clock read.
        self._received.append((ctypes.string_at(data, size), monotonic_ns()))
        return 0

    def _take_received(self) -> Iterator[MoveEvent]:
        received, self._received = self._received, []
        for data, seen_ns in received:
            ts_ns, pid, tid, count, copied, _, head = EVENT.unpack(data)
            self.counters.captured += 1
            self.counters.bytes += count
            yield MoveEvent(ts_ns, seen_ns, pid, tid, head[:copied])

    def events(self) -> Iterator[MoveEvent]:
        while not self._stopping:
            exited = self.target_exited()
            # Adaptive: the kernel wakes us as soon as there is news. Poll: nothing wakes us,
            # the timeout is the polling period.
            self.bpf.ring_buffer_poll(self.poll_ms)
            self.bpf.ring_buffer_consume()
            yield from self._take_received()
            if exited:
                break  # the last write happened before the exit, and it has been drained
        self.bpf.ring_buffer_consume()
        yield from self._take_received()
        self._read_kernel_counters()

    def _read_kernel_counters(self) -> None:
        counters = self.bpf[b"counters"]
        self.kernel_matched = sum(counters[ctypes.c_int(0)])
        self.counters.lost = sum(counters[ctypes.c_int(1)])

    def close(self) -> None:
        if self.bpf is not None:
            self.bpf.cleanup()  # detaches the hook, unloads the program, frees the ring
            self.bpf = None
        super().close()
