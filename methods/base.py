"""The Observer contract every interception technique implements.

A backend knows how to watch a process's write() calls on stdout and turn each one into a
MoveEvent. It knows nothing of tables, statistics or files: bench/ does that.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterator, NamedTuple, Sequence

import psutil

from bench.truth import decode_move_name

# Every observer watches this descriptor: the opponent writes its moves to stdout, and its
# ground-truth report goes to a file, so the report's own write() calls are never counted.
WATCHED_FD = 1


class ObserverUnavailable(Exception):
    """The mechanism cannot run here; the message is the one-line reason shown to users."""


class ObserverError(Exception):
    """A user-facing failure (bad PID, ambiguous name ...); the message says what to do."""


class MoveEvent(NamedTuple):
    """One observed write(). A NamedTuple: a consumer makes millions, and a tuple is the
    cheapest immutable record Python has (a frozen dataclass costs several times more)."""

    ts_ns: int  # CLOCK_MONOTONIC when the mechanism saw the write
    seen_ns: int  # CLOCK_MONOTONIC when Python received the event
    pid: int
    tid: int
    raw: bytes  # the first bytes of the buffer, as the mechanism copied them

    @property
    def move(self) -> str | None:
        return decode_move_name(self.raw)


@dataclass
class Counters:
    captured: int = 0  # events handed to Python
    lost: int = 0  # events the mechanism knows it dropped (ring full ...)
    bytes: int = 0  # bytes the watched write() calls asked to write


REGISTRY: dict[str, type["Observer"]] = {}


class Observer(ABC):
    """One interception technique. Use as a context manager so close() always runs.

    Lifecycle: launch(argv) or attach(pid), then iterate events() until the target exits or
    stop() is called, then close(). Subclasses register themselves by defining `method`.
    """

    method: ClassVar[str]
    can_attach: ClassVar[bool] = False
    description: ClassVar[str] = ""
    # A reference peer (strace, bpftrace) is measured beside ours, not built by us: a capture
    # it gets wrong is a finding about it, reported, not a failure of the sweep.
    reference_peer: ClassVar[bool] = False
    # Constructor keyword -> argparse settings (plus "default", and "flag": True for booleans);
    # the CLI turns each into --keyword and refuses it for other methods.
    cli_options: ClassVar[dict[str, dict]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if getattr(cls, "method", None):
            REGISTRY[cls.method] = cls

    def __init__(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise ObserverUnavailable(reason)
        self.counters = Counters()
        self.pid: int | None = None
        self.process: subprocess.Popen | None = None
        self._pidfd: int | None = None
        self._gate: int | None = None
        self._stopping = False

    # --- availability -------------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the mechanism can run here, else a one-line reason."""
        return None

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        if not cls.can_attach:
            return f"{cls.method} cannot attach to a running process"
        return cls.unavailable_reason()

    # --- starting -----------------------------------------------------------------------
    def launch(self, argv: Sequence[str], *, stdout=subprocess.DEVNULL, stderr=None,
               env: dict | None = None) -> subprocess.Popen:
        """Start argv held at a gate, and put it under observation before it can write anything.

        The process runs `sh`, which waits for one line on its stdin (the gate pipe) and then
        execs argv in place, so its PID, which the mechanism is pointed at, stays the same.
        release() opens the gate. Any program can be launched this way, not only the opponent;
        it gets /dev/null as stdin.
        """
        gate_read, self._gate = os.pipe()
        try:
            self.process = subprocess.Popen(
                self._launcher(["/bin/sh", "-c", self._gate_script, *argv]),
                stdin=gate_read, stdout=stdout, stderr=stderr, env=env, pass_fds=self._pass_fds,
                preexec_fn=die_with_parent)
        finally:
            os.close(gate_read)
        try:
            self._begin(self._target_pid(self.process))
        except BaseException:
            self._kill_launched()
            raise
        return self.process

    # Hooks for observers that are themselves a program wrapping the target (strace ...).
    _gate_script = 'read -r _; exec "$0" "$@" </dev/null'
    _pass_fds: tuple[int, ...] = ()

    def _launcher(self, command: list[str]) -> list[str]:
        return command

    def _target_pid(self, process: subprocess.Popen) -> int:
        return process.pid

    def release(self) -> None:
        """Let a launched target run (it is waiting at the gate)."""
        if self._gate is not None:
            os.write(self._gate, b"go\n")
            os.close(self._gate)
            self._gate = None

    def attach(self, pid: int) -> None:
        reason = self.attach_unavailable_reason()
        if reason:
            raise ObserverUnavailable(reason)
        check_pid(pid)
        self._begin(pid)

    def _begin(self, pid: int) -> None:
        self.pid = pid
        # A pidfd becomes readable when the process exits, whether it is our child or not.
        self._pidfd = os.pidfd_open(pid)
        self._observe(pid)

    @abstractmethod
    def _observe(self, pid: int) -> None:
        """Put the mechanism in place on pid (already started, still gated)."""

    # --- events -------------------------------------------------------------------------
    @abstractmethod
    def events(self) -> Iterator[MoveEvent]:
        """Yield events until the target has exited (and everything is drained) or stop()."""

    def _events_from_batch(self, batch, pids=None) -> Iterator[MoveEvent]:
        """MoveEvents from a numpy batch of records with ts_ns, tid, count, copied and a
        CAPTURE_BYTES-wide head: what the ring-buffer backends read. pids: a column, or
        None when every record is the target's."""
        seen_ns = time.monotonic_ns()  # the whole batch reached Python now
        self.counters.captured += batch.size
        self.counters.bytes += int(batch["count"].sum())
        width = batch.dtype["head"].itemsize
        heads = batch["head"].tobytes()  # keeps NUL bytes, unlike a bytes-string column
        pids = batch[pids].tolist() if pids else [self.pid] * batch.size
        offset = 0
        for ts_ns, pid, tid, copied in zip(batch["ts_ns"].tolist(), pids, batch["tid"].tolist(),
                                           batch["copied"].tolist()):
            yield MoveEvent(ts_ns, seen_ns, pid, tid, heads[offset:offset + copied])
            offset += width

    def _drain_batches(self, take, wait, pids=None) -> Iterator[MoveEvent]:
        """The ring-buffer backends' loop: take() returns the batch waiting (maybe empty),
        wait() sleeps until there may be more. Ends after a final drain once the target has
        exited (checked before reading, so its last writes are already in the ring) or stop()."""
        while not self._stopping:
            exited = self.target_exited()
            batch = take()
            if batch.size:
                yield from self._events_from_batch(batch, pids)
            elif exited:
                break
            else:
                wait()
        yield from self._events_from_batch(take(), pids)

    def not_applicable(self, expected: int) -> str | None:
        """After events(): why this mechanism could not see the target's moves at all (a
        finding to report, not a failed capture), or None."""
        return None

    def stop(self) -> None:
        """Ask events() to finish after the events already received. Safe from a signal handler."""
        self._stopping = True

    def target_exited(self, timeout_s: float = 0.0) -> bool:
        if self._pidfd is None:
            return True
        readable, _, _ = select.select([self._pidfd], [], [], timeout_s)
        return bool(readable)

    # --- cleanup ------------------------------------------------------------------------
    def close(self) -> None:
        """Detach and release everything. Idempotent; runs on every exit path.

        A target we launched does not outlive the observation; one we attached to is left
        running as it was found.
        """
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None
        self._kill_launched()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _kill_launched(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class PrintedEvents:
    """For observers that are a program printing one line per write (strace, bpftrace): turns
    chunks of its output into events, a partial last line waiting for the next chunk."""

    _unfinished_line = b""

    def _events_from_output(self, chunk: bytes, seen_ns: int) -> Iterator[MoveEvent]:
        lines = (self._unfinished_line + chunk).split(b"\n")
        self._unfinished_line = lines.pop()
        for line in lines:
            event = self._parse(line, seen_ns)
            if event is not None:
                yield event

    def _parse(self, line: bytes, seen_ns: int) -> MoveEvent | None:
        raise NotImplementedError


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
CAPABILITY_NAMES = {CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}


def effective_capabilities() -> set[int]:
    """The capabilities this process holds now (CapEff in /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                mask = int(line.split()[1], 16)
                return {bit for bit in range(64) if mask >> bit & 1}
    return set()


def proc_status_field(pid: int, field: str) -> int | None:
    """A numeric field of /proc/PID/status (Tgid, TracerPid ...), None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def die_with_parent() -> None:
    """In a launched child: be killed when tapbench dies, even by SIGKILL, so a target it
    launched never outlives it (PR_SET_PDEATHSIG survives exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def check_pid(pid: int) -> psutil.Process:
    """Refuse a PID that cannot be observed, with a sentence that says why."""
    if pid <= 0:
        raise ObserverError(f"PID must be a positive number, got {pid}")
    try:
        process = psutil.Process(pid)
        status = process.status()
    except psutil.NoSuchProcess:
        raise ObserverError(f"no process with PID {pid}") from None
    if status == psutil.STATUS_ZOMBIE:
        raise ObserverError(f"PID {pid} is a zombie: it has exited and writes nothing more")
    if pid == os.getpid():
        raise ObserverError(f"PID {pid} is tapbench itself")
    return process


def find_pid_by_name(name: str) -> int:
    """The single live process whose program name is `name` (as in /proc/PID/cmdline)."""
    matches = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["pid"] == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if cmdline and os.path.basename(cmdline[0]) == name:
            matches.append(process.info["pid"])
    if not matches:
        raise ObserverError(f"no running process named {name!r}; start one or pass --pid")
    if len(matches) > 1:
        listed = ", ".join(str(pid) for pid in sorted(matches))
        raise ObserverError(f"{len(matches)} processes are named {name!r} (PIDs {listed}); "
                            f"choose one with --pid")
    return matches[0]


def wait_until_exited(observer: Observer, poll_s: float = 0.05) -> None:
    """For mechanisms with nothing to drain: block until the target exits or stop()."""
    while not observer._stopping and not observer.target_exited(poll_s):
        pass

