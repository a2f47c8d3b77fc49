"""bpftrace as a reference method: the article's tracepoint one-liner with the same filter as
our eBPF backend (the target's PID, fd 1, the first 32 bytes), its output parsed into the same
verified event stream, so our bcc backend is compared with it in the same run.

With --probe uprobe (and --capture count) it is the independent peer of tapbench's uprobe: a
bpftrace uprobe at the entry of Go's syscall.write that only counts the writes to the watched
fd, so that the uprobe's cost per call is measured twice, by two implementations, in one run.
(Debian's bpftrace cannot place a uprobe past the entry, as tapbench's does, past the stack
check: the entry is counted again when a write grows its goroutine's stack, which the count
check would show.)

bpftrace's `nsecs` is bpf_ktime_get_ns(), CLOCK_MONOTONIC, like every other mechanism here.
Events travel through bpftrace's perf buffer; when it overflows, bpftrace prints
"Lost N events", which is counted as the mechanism's own loss.
"""
from __future__ import annotations

import os
import re
import shutil
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator

from methods.base import Observer, ObserverError

from methods import options as shared
from methods.options import Options, option
from methods.protocol import CAPTURE_BYTES, WATCHED_FD, MoveEvent
from methods._kernel.process import SKIP_CAPABILITY_PRECHECK, die_with_parent, PrintedEvents
from methods._kernel.bpf_system import bpf_program_leftovers
from methods.spec import FEW_MOVES, SweepSpec

READY = b"tapbench-ready"
# BEGIN runs once every probe is attached, so its line means the tracepoint is live.
PROGRAM = """BEGIN { printf("READY\\n"); }
tracepoint:syscalls:sys_enter_write /pid == PID && args->fd == FD/ {
  printf("%llu %d %d %llu %r\\n", nsecs, pid, tid, args->count,
         buf(args->buf, args->count < BYTES ? args->count : BYTES));
}
"""
# Count only: the writes to the watched fd, printed by bpftrace as it exits ("@writes: N").
COUNT_PROGRAMS = {
    "tracepoint": "tracepoint:syscalls:sys_enter_write /pid == PID && args->fd == FD/ { @writes = count(); }",
    # Go's register ABI: syscall.write(fd, p, n) takes fd in AX
    "uprobe": 'uprobe:BINARY:"syscall.write" /pid == PID && reg("ax") == FD/ { @writes = count(); }',
}
PROBES = tuple(COUNT_PROGRAMS)
COUNT_LINE = re.compile(rb"^@writes: (\d+)")
# a path bpftrace's probe syntax takes as it is
PLAIN_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")
# "<nsecs> <pid> <tid> <count> <bytes, non-printable ones as \\xNN>"
EVENT_LINE = re.compile(rb"^(\d+) (\d+) (\d+) (\d+) (.*)$", re.DOTALL)
LOST_LINE = re.compile(rb"Lost (\d+) events")
ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")
# Per-CPU perf buffer pages (bpftrace's default is 64, 256 KiB, which a flat-out opponent fills).
PERF_RB_PAGES = 4096
START_TIMEOUT_S = 60
QUIET_S = 0.3
EXIT_TIMEOUT_S = 10  # for bpftrace to exit after SIGINT


def program_for(pid: int, watched_fd: int = WATCHED_FD, probe: str = "tracepoint", capture: str | None = None,
                binary: str = "BINARY") -> str:
    if probe == "uprobe" and not PLAIN_PATH.match(binary):
        raise ObserverError(f"bpftrace's uprobe cannot name {binary!r} in its probe (only plain paths)")
    text = PROGRAM if capture != "count" else 'BEGIN { printf("READY\\n"); }\n' + COUNT_PROGRAMS[probe] + "\n"
    return (text.replace("READY", READY.decode()).replace("PID", str(pid)).replace("BINARY", binary)
            .replace("FD", str(watched_fd)).replace("BYTES", str(CAPTURE_BYTES)))


@dataclass(frozen=True)
class BpftraceOptions(Options):
    probe: str = option("tracepoint", "tracepoint: sys_enter_write (the article's); uprobe: Go's syscall.write, "
                                      "count only (the peer of tapbench's uprobe)", choices=PROBES)
    capture: str | None = shared.capture()

    def check(self) -> None:
        if self.probe == "uprobe" and self.capture != "count":
            raise ObserverError("bpftrace --probe uprobe only counts: give --capture count")


class BpftraceObserver(PrintedEvents, Observer):
    method = "bpftrace"
    reference_peer = True
    can_attach = True
    description = "bpftrace tracepoint:syscalls:sys_enter_write one-liner, parsed (reference peer)"
    dependence = ("bpftrace installed; CAP_IPC_LOCK for perf buffers larger than perf_event_mlock_kb")
    loss_source = "tool's own report"  # its "Lost N events" lines
    # its consumer takes tens of µs a move: fewer moves; it compiles at every start
    sweep = SweepSpec(moves=FEW_MOVES, primary_group="bpftrace", more={"cold_starts": ({},)})
    Options = BpftraceOptions
    options: BpftraceOptions

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.probe, self.capture = self.options.probe, self.options.capture
        self.binary: str | None = None  # the uprobe's program file
        self._tracer: subprocess.Popen | None = None
        self.unparsed_lines = 0
        self.killed_at_exit = False  # bpftrace did not exit on SIGINT: killed, its output drained

    @classmethod
    def program_text(cls, pid: int, **options) -> str:
        chosen = cls.Options.of(options)
        return program_for(pid, probe=chosen.probe, capture=chosen.capture,
                           binary=os.path.realpath(f"/proc/{pid}/exe"))

    @classmethod
    def leftovers(cls) -> set[str]:
        return bpf_program_leftovers()

    def facts(self) -> dict:
        return {"unparsed_lines": self.unparsed_lines, "killed_at_exit": self.killed_at_exit, "probe": self.probe}

    def launch(self, argv, **kwargs):
        # The uprobe goes into the program the gate shell will exec, not into the shell.
        program = os.fspath(argv[0])
        self.binary = os.path.realpath(program if os.sep in program else shutil.which(program) or program)
        return super().launch(argv, **kwargs)

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        if shutil.which("bpftrace") is None:
            return "bpftrace is not installed (Debian package bpftrace; `make setup` installs it)"
        if os.geteuid() != 0 and not os.environ.get(SKIP_CAPABILITY_PRECHECK):
            return "bpftrace needs root"
        return None

    def _observe(self, pid: int) -> None:
        binary = self.binary or os.path.realpath(f"/proc/{pid}/exe")  # attached: the running program's
        self._tracer = subprocess.Popen(
            ["bpftrace", "-e", program_for(pid, self.watched_fd, self.probe, self.capture, binary)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=os.environ | {"BPFTRACE_PERF_RB_PAGES": str(PERF_RB_PAGES)},
            preexec_fn=die_with_parent)
        os.set_blocking(self._tracer.stdout.fileno(), False)
        deadline = time.monotonic() + START_TIMEOUT_S
        text = b""
        while READY not in text:
            if self._tracer.poll() is not None or time.monotonic() > deadline:
                text += self._read_available()
                self._end_tracer()
                lines = text.decode(errors="replace").strip().splitlines()
                # Its first error says why; the RLIMIT_MEMLOCK one is a warning it always prints
                # where it may not raise that limit, and it runs on regardless.
                errors = [line for line in lines if "ERROR" in line and "RLIMIT_MEMLOCK" not in line]
                raise ObserverError("bpftrace did not start: " + ((errors or lines or ["no output"])[0]))
            select.select([self._tracer.stdout], [], [], 0.1)
            text += self._read_available()
        # Whatever followed the ready line is already events.
        self._unfinished_line = text.split(READY + b"\n", 1)[1] if READY + b"\n" in text else b""

    def _read_available(self) -> bytes:
        try:
            return os.read(self._tracer.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return b""

    def events(self) -> Iterator[MoveEvent]:
        interrupted = False
        quiet_since = None
        output = self._tracer.stdout.fileno()
        while True:
            # bpftrace does not drain its perf buffer when interrupted: once the target has
            # gone, wait until its output has been quiet for QUIET_S, then SIGINT ends it and
            # EOF ends the loop. stop() interrupts at once.
            if not interrupted and (self._stopping or (
                    quiet_since is not None and time.monotonic() - quiet_since > QUIET_S)):
                self._tracer.send_signal(signal.SIGINT)
                interrupted = time.monotonic()
            elif interrupted and time.monotonic() - interrupted > EXIT_TIMEOUT_S and self._tracer.poll() is None:
                # bpftrace sometimes never exits after SIGINT (seen here once in a few hundred
                # runs), its output long drained: ended, and said, rather than waited for.
                self._tracer.kill()
                self.killed_at_exit = True
            exited = self.target_exited()
            readable, _, _ = select.select([output], [], [], 0.05)
            chunk = self._read_available() if readable else b""
            if readable and not chunk:
                break
            if chunk or not exited:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            yield from self._events_from_output(chunk, time.monotonic_ns())
        self._tracer.wait()

    def _parse(self, line: bytes, seen_ns: int) -> MoveEvent | None:
        counted = COUNT_LINE.match(line)
        if counted:
            self.counters.counted = int(counted.group(1))
            return None
        lost = LOST_LINE.search(line)
        if lost:
            self.counters.lost += int(lost.group(1))
            return None
        match = EVENT_LINE.match(line)
        if match is None:
            if line.strip():
                self.unparsed_lines += 1
            return None
        ts_ns, pid, tid, count, escaped = match.groups()
        self.counters.captured += 1
        self.counters.bytes += int(count)
        # %r prints printable bytes as they are and the others as \xNN. A move line is all
        # printable; a literal backslash in a non-move could be misread, which only changes
        # how a non-move looks, never turns one into a move.
        raw = ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), escaped)
        return MoveEvent(int(ts_ns), seen_ns, int(pid), int(tid), raw)

    def _end_tracer(self) -> None:
        if self._tracer is not None and self._tracer.poll() is None:
            self._tracer.kill()
            self._tracer.wait()

    def close(self) -> None:
        self._end_tracer()
        if self._tracer is not None:
            self._tracer.stdout.close()
            self._tracer = None
        super().close()
