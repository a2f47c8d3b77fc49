"""strace as a reference method: `strace -f -e trace=write`, its output parsed into the same
verified event stream, so tapbench's own ptrace backend is compared with it in the same run.

strace prints wall-clock (CLOCK_REALTIME) timestamps; they are moved onto CLOCK_MONOTONIC with
the offset between the two clocks read at launch, which is good to a few µs.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator

import psutil

from methods.base import Observer, ObserverError

from methods.options import Options, option
from methods.protocol import CAPTURE_BYTES, MoveEvent
from methods._kernel.process import die_with_parent, PrintedEvents, proc_status_field, ThreadProcesses
from methods.spec import FEW_MOVES, SweepSpec

# "1234 1700000000.123456789 write(1, "\x72\x6f...", 9) = 9", or "... 9 <unfinished ...>";
# -xx prints every byte as \xNN, so the buffer decodes exactly.
WRITE_LINE = re.compile(rb'^(\d+) +(\d+)\.(\d{9}) write\((\d+), "((?:\\x[0-9a-f]{2})*)"(\.\.\.)?, (\d+)')


@dataclass(frozen=True)
class StraceOptions(Options):
    seccomp_bpf: bool = option(False, "strace --seccomp-bpf: stop only at write()", flag=True)


class StraceObserver(PrintedEvents, Observer):
    method = "strace"
    follows_children = True  # -f
    reference_peer = True
    can_attach = True
    description = "strace -f -e trace=write, parsed (reference peer)"
    sweep = SweepSpec(options={"seccomp_bpf": False}, moves=FEW_MOVES, primary_group="tracers")
    dependence = ("strace installed; attaching to another user's process needs CAP_SYS_PTRACE")
    default_placement = "shared"
    # No loss count: strace stops the target at each write, so nothing can be dropped.
    Options = StraceOptions

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.seccomp_bpf = self.options.seccomp_bpf
        self._output: int | None = None
        self._clock_offset_ns = 0
        self._attached_tracer: subprocess.Popen | None = None  # `strace -p`, when attaching
        self.unparsed_lines = 0
        # strace prints thread ids only; their process is asked of the kernel when the parser
        # first meets one. strace -f also follows the target's children, whose writes must not
        # pass for the target's.
        self._processes = ThreadProcesses()

    def facts(self) -> dict:
        return {"unparsed_lines": self.unparsed_lines, "threads_unresolved": self._processes.unresolved}

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        if shutil.which("strace") is None:
            return "strace is not installed (Debian package strace; `make setup` installs it)"
        if shutil.which("setpriv") is None:
            return "setpriv is not installed (Debian package util-linux)"
        return None

    def launch(self, argv, **kwargs):
        self._output, write_end = os.pipe()
        self._pass_fds = (write_end,)
        self._write_end = write_end
        self._clock_offset_ns = time.time_ns() - time.monotonic_ns()
        try:
            return super().launch(argv, **kwargs)
        finally:
            os.close(write_end)  # strace holds it now; EOF on ours means strace has ended

    def _options(self, output_fd: int) -> list[str]:
        # -I 2: with -o FILE PROG, strace blocks fatal signals for good (-I 3), so stop()'s
        # SIGTERM would never reach it; at 2 it detaches from the target and exits.
        options = ["-f", "-qq", "-I", "2", "-e", "trace=write", "-e", "signal=none", "-xx",
                   "-s", str(CAPTURE_BYTES), "--timestamps=unix,ns", "-o", f"/dev/fd/{output_fd}"]
        if self.seccomp_bpf:
            options.append("--seccomp-bpf")
        return options

    def _launcher(self, command: list[str]) -> list[str]:
        # The target is strace's child, not ours, so our PR_SET_PDEATHSIG does not reach it:
        # setpriv sets its own, so that it dies with strace (which dies with tapbench).
        # It also runs the command as the target's user: strace itself stays as it is.
        user = self.target_user
        drop = [] if user is None or user.is_current else user.setpriv_options()
        if drop:
            user.check_can_switch()
        return ["strace", *self._options(self._write_end), "--", "setpriv", *drop, "--pdeathsig", "KILL", *command]

    @property
    def _tracer(self) -> subprocess.Popen | None:
        return self._attached_tracer or self.process

    def _target_pid(self, process: subprocess.Popen) -> int:
        """strace forks the command: wait for that child (setpriv, then the gate shell it
        execs, the target to be).
        strace also forks short-lived children of its own to probe ptrace features at start,
        so the child is recognised by its command line, not by being first."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                for child in psutil.Process(process.pid).children():
                    if child.cmdline()[:2] == ["/bin/sh", "-c"]:
                        return child.pid
            except psutil.NoSuchProcess:
                if process.poll() is not None:
                    break
            time.sleep(0.002)
        raise ObserverError("strace did not start the target")

    def _observe(self, pid: int) -> None:
        if self.process is not None:
            return  # launched: strace is already tracing it, from before exec
        # Attaching: `strace -p`, every thread, then wait until the kernel says it traces them.
        self._output, write_end = os.pipe()
        self._clock_offset_ns = time.time_ns() - time.monotonic_ns()
        try:
            self._attached_tracer = subprocess.Popen(
                ["strace", *self._options(write_end), "-p", str(pid)], stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE, pass_fds=(write_end,), preexec_fn=die_with_parent)
        finally:
            os.close(write_end)
        deadline = time.monotonic() + 10
        while proc_status_field(pid, "TracerPid") != self._attached_tracer.pid:
            if self._attached_tracer.poll() is not None or time.monotonic() > deadline:
                error = self._attached_tracer.stderr.read().decode(errors="replace").strip()
                raise ObserverError(f"strace did not attach to PID {pid}: {error or 'no reason given'}")
            time.sleep(0.002)

    def events(self) -> Iterator[MoveEvent]:
        while True:
            if self._stopping:
                self._tracer.terminate()  # strace detaches from the target and exits
            readable, _, _ = select.select([self._output], [], [], 0.1)
            if not readable:
                continue
            chunk = os.read(self._output, 1 << 16)
            if not chunk:
                break
            yield from self._events_from_output(chunk, time.monotonic_ns())

    def _parse(self, line: bytes, seen_ns: int) -> MoveEvent | None:
        match = WRITE_LINE.match(line)
        if match is None:
            if b" write(" in line and b"resumed>" not in line:
                self.unparsed_lines += 1
            return None
        tid, seconds, nanos, fd, hexbytes, _, count = match.groups()
        if int(fd) != self.watched_fd:
            return None
        self.counters.captured += 1
        self.counters.bytes += int(count)
        ts_ns = int(seconds) * 1_000_000_000 + int(nanos) - self._clock_offset_ns
        return MoveEvent(ts_ns, seen_ns, self._processes[int(tid)], int(tid),
                         bytes.fromhex(hexbytes.replace(b"\\x", b"").decode()))

    def close(self) -> None:
        if self._attached_tracer is not None:
            if self._attached_tracer.poll() is None:
                self._attached_tracer.terminate()  # detaches; the target runs on
                try:
                    self._attached_tracer.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._attached_tracer.kill()
                    self._attached_tracer.wait()
            self._attached_tracer.stderr.close()
            self._attached_tracer = None
        if self._output is not None:
            os.close(self._output)
            self._output = None
        super().close()
