"""ptrace observer (python-ptrace's low-level bindings): the tracer stops the target at writes.

Two strategies, both measured (`--strategy`):
  seccomp  launch only: before exec, the child installs a seccomp filter that returns
           SECCOMP_RET_TRACE for write() to stdout and allows everything else, so the target
           stops once per move and never for other system calls or descriptors (strace's
           --seccomp-bpf filters on the system call only).
  step     PTRACE_SYSCALL: two stops per system call, every system call. Works on attach too.

Every tracee is PTRACE_SEIZEd (also at launch), so PTRACE_INTERRUPT can stop any thread for a
clean detach, and threads created later are followed through PTRACE_O_TRACECLONE.

Children and the seccomp strategy: the filter is inherited across fork and exec, and a process
that meets SECCOMP_RET_TRACE with no tracer gets ENOSYS, so a child of the target writing to its
stdout would fail where it succeeds unwatched. The seccomp strategy therefore follows forks and
vforks too (PTRACE_O_TRACEFORK, TRACEVFORK) and stays until the last traced process has exited;
every tracee gets PTRACE_O_EXITKILL, so none outlives a tracer that dies (a launched target dies
with tapbench anyway), and a watch stopped early kills what it launched, children included,
rather than leave them with a filter and no tracer. A child's writes are events of its own
process (MoveEvent.pid is the child's): the verifier counts them as another process's, and
`watch` shows them as the child's. The step strategy needs no filter: it follows threads only,
and children run untraced, as unwatched.

The per-stop path is what the overhead is made of, so it is kept to: os.waitpid, one
PTRACE_GET_SYSCALL_INFO (number and arguments in one call, no register dump), one pread of at
most 32 bytes from the target's /proc/PID/mem (ProcessMemory), and the resume. Those two ptrace
calls go straight to libc (hot_ptrace_function): without python-ptrace's wrapper, used for
everything else, the tracer's CPU per move fell by about a microsecond (13.1 to 12.1 µs, shared
placement). Then three more changes took the overhead per move from 12.2 to 8.8 µs and the
tracer's CPU from 9.3 to 6.4 µs (shared placement, `tapbench run --method ptrace,strace
--placement shared --moves 20000 --repeats 9`):
  - os.pread, a plain system call from Python, for process_vm_readv through ctypes;
  - os.waitpid, not os.wait4, which has the kernel gather the stopped thread's resource usage
    and Python build a record of it at every stop;
  - the ptrace arguments passed untyped, which ctypes converts faster.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator


from methods.base import Observer, ObserverError, ObserverUnavailable

from methods import options as shared
from methods.options import Options, option
from methods.protocol import CAPTURE_BYTES, MoveEvent, spin_for
from methods._kernel.process import ProcessMemory
from methods._kernel.tracing import (INFO_ENTRY, INFO_SECCOMP, PTRACE_CONT, PTRACE_DETACH, PTRACE_EVENT_CLONE,
                                     PTRACE_EVENT_EXEC, PTRACE_EVENT_FORK, PTRACE_EVENT_SECCOMP, PTRACE_EVENT_STOP,
                                     PTRACE_EVENT_VFORK, PTRACE_GET_SYSCALL_INFO, PTRACE_INTERRUPT,
                                     PTRACE_O_EXITKILL, PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC, PTRACE_O_TRACEFORK,
                                     PTRACE_O_TRACESECCOMP, PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACEVFORK,
                                     PTRACE_SEIZE, PTRACE_SYSCALL, SYSCALL_INFO, SYSCALL_INFO_SIZE, SYSCALL_STOP,
                                     SYSCALL_WRITE_NR, TracedChild, WAIT_ALL_THREADS, busy_wait,
                                     hot_ptrace_function, ptrace_function, read_int, stop_waiting, tgid_of,
                                     write_trace_filter, stopped_processes)
from methods.spec import FEW_MOVES, SweepSpec, claim

STRATEGIES = ("seccomp", "step")


@dataclass(frozen=True)
class PtraceOptions(Options):
    strategy: str = option("seccomp", "seccomp: one stop per write (launch only); step: PTRACE_SYSCALL",
                           choices=STRATEGIES)
    exitkill: bool = option(False, "PTRACE_O_EXITKILL: the target dies if the tracer dies", flag=True)
    capture: str | None = shared.capture()
    spin_us: int = shared.spin_us()


# Test-only: busy work (ns) added to every write stop, so that tests/test_gate.py can check that
# the gate fails a real backend made slower. Unset, it costs one comparison per stop.
EXTRA_WORK_VARIABLE = "TAPBENCH_TEST_EXTRA_NS_PER_STOP"


class PtraceObserver(Observer):
    method = "ptrace"
    can_attach = True
    follows_children = True  # PTRACE_O_TRACEFORK and VFORK, with the filter inherited
    description = "python-ptrace tracer: seccomp-filtered write stops, or PTRACE_SYSCALL stepping"
    article_name = "ptrace injection"
    dependence = ("x86-64 system-call numbers and PTRACE_GET_SYSCALL_INFO (Linux 5.3+); the seccomp "
                  "strategy needs libseccomp and launch; works on static Go; an attach needs "
                  "CAP_SYS_PTRACE for another user's or a privileged process")
    default_placement = "shared"
    # A seccomp filter cannot be put into a running process: attaching steps.
    attach_options = {"strategy": "step"}
    # No loss count: a stopped target waits for the tracer, so nothing can be dropped.
    # a stop at every write: fewer moves; the stepping strategy's least privilege too, and a
    # SIGKILL of tapbench with the kernel's PTRACE_O_EXITKILL
    sweep = SweepSpec(options={"strategy": "seccomp", "exitkill": False}, moves=FEW_MOVES, gate_moves=3_000,
                      primary_group="seccomp",
                      more={"privileges": ({"strategy": "step", "exitkill": False},),
                            "sigkill": ({"strategy": "step", "exitkill": True},)})
    claims = (
        claim("overhead_ns", "~5 µs", 5_000),
        claim("intrusiveness", "high (stops all threads)"),
        claim("kernel_dependence", "strong (ABI-sensitive)"),
    )
    Options = PtraceOptions
    options: PtraceOptions

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._count_only = self.options.capture == "count"  # the floor: the same stop, no memory read
        self.strategy = self.options.strategy
        self.exitkill = self.options.exitkill
        # The threads we trace, each with its process as the kernel said when we first saw it:
        # every event carries that, so the verifier's check of the writer's process is real.
        self.threads: dict[int, int] = {}
        self.detached_early = False  # we stopped watching before the target exited
        self.seccomp_stops = 0  # stops the seccomp filter made: what the target paid for
        self._held_tid: int | None = None  # thread stopped while its event is with the consumer
        self._ptrace = ptrace_function()
        self._hot_ptrace = hot_ptrace_function()
        self._info = ctypes.create_string_buffer(SYSCALL_INFO_SIZE)
        self._info_address = ctypes.c_void_p(ctypes.addressof(self._info))
        self._memory = ProcessMemory()
        # seccomp: the filter stops the target at each write; step: stop at every syscall.
        self._resume_request = PTRACE_CONT if self.strategy == "seccomp" else PTRACE_SYSCALL
        self._extra_work_ns = int(os.environ.get(EXTRA_WORK_VARIABLE, "0"))

    def facts(self) -> dict:
        return {"detached_early": self.detached_early, "seccomp_stops": self.seccomp_stops,
                "stops_caught_spinning": self.caught_spinning}

    def _wait_for_stop(self) -> tuple[int, int]:
        """The next stop (os.waitpid's answer). With --spin-us, poll for it first: a tracer
        asleep in waitpid must be woken by the stopping thread, which on a VM means waking an
        idle virtual CPU, tens of µs in split placement."""
        if self.spin_ns:
            stop = spin_for(stop_waiting, self.spin_ns)
            if stop:
                self.caught_spinning += 1
                return stop
        return os.waitpid(-1, WAIT_ALL_THREADS)

    @classmethod
    def leftovers(cls) -> set[str]:
        """Stopped processes: a dead tracer's tracees are detached by the kernel, but one
        detached while a stop was pending would stay stopped."""
        return stopped_processes()

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        try:
            import ptrace.binding  # noqa: F401
        except ImportError:
            return "python-ptrace is not installed in this environment (`make setup` installs it)"
        scope = read_int("/proc/sys/kernel/yama/ptrace_scope")
        if scope == 3:
            return "ptrace is disabled on this machine (kernel.yama.ptrace_scope = 3)"
        return None

    def ptrace_flags(self) -> int:
        """The PTRACE_O_ flags this tracer seizes with."""
        flags = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC
        if self.strategy == "seccomp":
            # Children carry the filter: they are followed, and die with the tracer (see top).
            flags |= PTRACE_O_TRACESECCOMP | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_EXITKILL
        if self.exitkill:
            flags |= PTRACE_O_EXITKILL
        return flags

    # --- starting -----------------------------------------------------------------------
    def _child_steps(self):
        # Built here, loaded in the child before exec: its exec and every write after stop.
        return [write_trace_filter(self.watched_fd).load] if self.strategy == "seccomp" else []

    def _own_process(self, popen: subprocess.Popen) -> TracedChild:
        return TracedChild(popen, self._ptrace)

    def attach(self, pid: int) -> None:
        if self.strategy == "seccomp":
            raise ObserverUnavailable("a seccomp filter cannot be installed into a running "
                                      "process: attach with --strategy step")
        super().attach(pid)

    def _observe(self, pid: int) -> None:
        # Seize every thread; repeat until no new thread appeared meanwhile (threads that the
        # seized ones create are followed by PTRACE_O_TRACECLONE).
        while True:
            tids = {int(t) for t in os.listdir(f"/proc/{pid}/task")} - self.threads.keys()
            if not tids:
                break
            for tid in tids:
                try:
                    self._ptrace(PTRACE_SEIZE, tid, 0, self.ptrace_flags())
                except OSError as error:
                    if error.errno == errno.EPERM and tid not in self.threads:
                        raise ObserverError(f"cannot ptrace PID {pid}: permission denied "
                                            "(needs CAP_SYS_PTRACE, or ptrace_scope 0 for a "
                                            "process of your own)") from None
                    continue  # the thread exited meanwhile
                self.threads[tid] = pid
                if self.process is None:
                    # Attach: stop each thread once so it enters syscall stepping. A launched
                    # target needs no stop: the first is its exec, when the gate opens.
                    self._ptrace(PTRACE_INTERRUPT, tid, 0, 0)

    # --- events -------------------------------------------------------------------------
    def events(self) -> Iterator[MoveEvent]:
        ptrace, resume = self._hot_ptrace, self._resume_request
        detaching = False
        while self.threads:
            if self._stopping and not detaching:
                detaching = True
                self._interrupt_all()
            try:
                tid, status = self._wait_for_stop()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            stopped_ns = time.monotonic_ns()
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                if self.threads.pop(tid, None) is None and self.process is not None:
                    self.process.other_child_reaped = True  # its usage is in our children's now
                if tid == self.pid and self.process is not None:
                    self.process.returncode = os.waitstatus_to_exitcode(status)
                    self.process.rusage = self.process.usage_since_launch()  # the leader goes last
                continue
            if tid not in self.threads:
                # A stop of a thread we do not know yet is a tracee's: waitpid reports stops
                # of traced threads only. A new thread (or, with the seccomp strategy, a
                # forked child) can report its first stop before its creator's event does.
                tgid = tgid_of(tid)
                if tgid is None:
                    continue  # gone already: its exit is reported next
                self.threads[tid] = tgid
            signum, event = (status >> 8) & 0xFF, status >> 16
            inject = 0
            if event == PTRACE_EVENT_SECCOMP or signum == SYSCALL_STOP:
                self.seccomp_stops += event == PTRACE_EVENT_SECCOMP
                try:
                    head = self._write_head(tid)
                except ProcessLookupError:
                    continue  # killed in its stop (exit_group): its exit is reported next
                if head is not None:
                    if self._extra_work_ns:
                        busy_wait(self._extra_work_ns)
                    self.counters.captured += 1
                    # While the consumer holds the event, this thread sits in its stop. If the
                    # consumer never comes back (an exception), close() detaches it from here.
                    self._held_tid = tid
                    yield MoveEvent(stopped_ns, time.monotonic_ns(), self.threads[tid], tid, head)
                    self._held_tid = None
            elif event in (PTRACE_EVENT_CLONE, PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_EXEC,
                           PTRACE_EVENT_STOP):
                pass  # a new thread or child, the exec, an interrupt or a group stop: go on
            else:
                inject = signum  # a signal for the target (Go sends itself SIGURG): deliver it
            if detaching:
                self._detach(tid, inject)
                continue
            try:
                ptrace(resume, tid, 0, inject)
            except ProcessLookupError:
                pass  # killed in its stop (exit_group): its exit is reported next

    def _write_head(self, tid: int) -> bytes | None:
        """The first bytes of a write to stdout at this stop, or None for anything else (and,
        with --capture count, for every write: it is counted, nothing is read)."""
        self._hot_ptrace(PTRACE_GET_SYSCALL_INFO, tid, SYSCALL_INFO_SIZE, self._info_address)
        op, _, _, _, nr, fd, buf, count = SYSCALL_INFO.unpack_from(self._info)
        if op not in (INFO_ENTRY, INFO_SECCOMP) or nr != SYSCALL_WRITE_NR or fd != self.watched_fd:
            return None
        self.counters.bytes += count
        if self._count_only:
            self.counters.counted += 1
            return None
        # The memory of the process the thread belongs to (the target's, or a child's).
        # An unreadable buffer (the write fails with EFAULT) gives an empty head.
        return self._memory.read(self.threads[tid], buf, min(count, CAPTURE_BYTES))

    def stop(self) -> None:
        """Also interrupt every thread: an idle target reports no stop of its own, and the
        event loop would otherwise wait in waitpid() for one forever."""
        super().stop()
        for tid in list(self.threads):
            try:
                self._ptrace(PTRACE_INTERRUPT, tid, 0, 0)
            except OSError:
                pass

    def _interrupt_all(self) -> None:
        if self.strategy == "seccomp" and self.process is not None:
            # Detached, the target and its children would keep a filter that no tracer
            # answers: every write of theirs to stdout would fail with ENOSYS. What we
            # launched ends with the watch instead (the target would be killed at close()
            # anyway), children included.
            self.detached_early = True
            for tid in list(self.threads):
                try:
                    os.kill(tid, signal.SIGKILL)
                except ProcessLookupError:
                    self.threads.pop(tid, None)
            self._held_tid = None
            return
        if self._held_tid is not None:
            self._detach(self._held_tid, 0)  # already stopped: no stop will be reported again
            self._held_tid = None
        for tid in list(self.threads):
            try:
                self._ptrace(PTRACE_INTERRUPT, tid, 0, 0)
            except OSError:
                self.threads.pop(tid, None)

    def _detach(self, tid: int, signum: int) -> None:
        try:
            self._ptrace(PTRACE_DETACH, tid, 0, signum)
        except OSError:
            pass  # gone meanwhile
        self.threads.pop(tid, None)

    # --- cleanup ------------------------------------------------------------------------
    def close(self) -> None:
        """Never leave a thread stopped: interrupt and detach whatever is still traced."""
        if self.threads:
            self._stopping = True
            for _ in self.events():
                pass
        self._memory.close()
        super().close()


