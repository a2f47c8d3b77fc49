"""ptrace's kernel interface as the ptrace backend uses it: the requests, options and events
python-ptrace predates, a traced child launched with its seccomp filter, the raw ptrace and
waitpid calls of the hot path, and the processes a tracer can leave stopped."""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import struct
import subprocess
import time
from types import SimpleNamespace

import psutil

from methods.base import ObserverUnavailable

from methods._kernel.process import CAP_SYS_ADMIN, effective_capabilities, proc_status_field


# From <linux/ptrace.h>; python-ptrace predates the SEIZE family and syscall info.
PTRACE_CONT, PTRACE_DETACH, PTRACE_SYSCALL = 7, 17, 24

PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_GET_SYSCALL_INFO = 0x4206, 0x4207, 0x420E

PTRACE_O_TRACESYSGOOD, PTRACE_O_TRACEFORK, PTRACE_O_TRACEVFORK = 0x1, 0x2, 0x4

PTRACE_O_TRACECLONE, PTRACE_O_TRACEEXEC = 0x8, 0x10

PTRACE_O_TRACESECCOMP, PTRACE_O_EXITKILL = 0x80, 0x100000

PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC = 1, 2, 3, 4

PTRACE_EVENT_SECCOMP, PTRACE_EVENT_STOP = 7, 128

SYSCALL_STOP = signal.SIGTRAP | 0x80  # with PTRACE_O_TRACESYSGOOD

WAIT_ALL_THREADS = 0x40000000  # __WALL: threads are not children in waitpid's usual sense

SYSCALL_WRITE_NR = 1  # x86-64

INFO_ENTRY, INFO_SECCOMP = 1, 3

# struct ptrace_syscall_info: op, pad, arch, ip, sp, then {nr, args[6]} for entry and seccomp.
SYSCALL_INFO = struct.Struct("<B3xIQQQQQQ")

SYSCALL_INFO_SIZE = 88

class TracedChild:
    """What launch() returns: the launched Popen, but reaped by the tracer's own waitpid loop.
    Popen's wait() and poll() call waitpid on the child, which would swallow the ptrace stops
    meant for the tracer in this same process, so they are never called."""

    def __init__(self, popen: subprocess.Popen, ptrace):
        self._popen = popen
        self._ptrace = ptrace
        self.pid = popen.pid
        self.stdout, self.stderr = popen.stdout, popen.stderr
        self.rusage = None  # the whole target's resource usage, once it is reaped
        # The per-stop loop reaps the target with waitpid, not wait4, whose usage record cost
        # 0.4 µs more a call (every stop, not just the last); what reaping the target added to
        # our children's usage is the same figure, unless another child of ours was reaped meanwhile.
        self._children_usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.other_child_reaped = False  # then the difference is not the target's alone

    def usage_since_launch(self) -> SimpleNamespace | None:
        """User and system time our reaped children used since launch: the target's, once the
        tracer's waitpid has reaped it; None (unknown) if another child of ours was reaped."""
        if self.other_child_reaped:
            return None
        now, before = resource.getrusage(resource.RUSAGE_CHILDREN), self._children_usage_before
        return SimpleNamespace(ru_utime=now.ru_utime - before.ru_utime, ru_stime=now.ru_stime - before.ru_stime)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    @returncode.setter
    def returncode(self, code: int) -> None:
        self._popen.returncode = code  # Popen then never waits for it either

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Reap the target. A thread of it that exited while traced is a zombie only its tracer
        (us) can reap, and until it is, the leader cannot be: a plain waitpid(pid) on a killed
        multi-threaded target could block forever. So reap its threads first, then it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            try:
                threads = {int(tid) for tid in os.listdir(f"/proc/{self.pid}/task")} - {self.pid}
            except FileNotFoundError:
                threads = set()
            for tid in threads:
                try:
                    os.waitpid(tid, os.WNOHANG | WAIT_ALL_THREADS)
                except ChildProcessError:
                    pass  # not traced by us (any more)
            pid, status, usage = os.wait4(self.pid, os.WNOHANG | WAIT_ALL_THREADS)
            if pid and not os.WIFSTOPPED(status):
                self.returncode, self.rusage = os.waitstatus_to_exitcode(status), usage
            elif pid:  # still traced and stopped: let it go so that the kill can take effect
                try:
                    self._ptrace(PTRACE_DETACH, self.pid, 0, 0)
                except OSError:
                    pass
            elif deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"PID {self.pid}", timeout)
            else:
                time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

def ptrace_function():
    """python-ptrace's raw ptrace(), raising OSError with the errno on failure."""
    from ptrace.binding.func import ptrace as python_ptrace
    from ptrace.error import PtraceError

    def call(request: int, pid: int, addr: int, data: int) -> int:
        try:
            return python_ptrace(request, pid, addr, data)
        except PtraceError as error:
            raise OSError(error.errno, os.strerror(error.errno or 0)) from None

    return call

def stop_waiting() -> tuple[int, int] | None:
    """A stop already waiting for the tracer (os.waitpid's answer), or None: no waiting."""
    answer = os.waitpid(-1, WAIT_ALL_THREADS | os.WNOHANG)
    return answer if answer[0] else None  # (0, 0) when no thread has stopped

def hot_ptrace_function():
    """ptrace() for the per-stop path: libc's, raising OSError (ProcessLookupError for ESRCH)
    only when it returns -1. Its arguments are passed without declared types, which ctypes
    converts in about half the time (0.4 against 0.7 µs a call here): the numbers (request,
    TID, a size, a signal) are below 2**31 and go as C ints, which libffi sign-extends to the
    full register that the variadic ptrace() reads, and an address goes as a c_void_p."""
    libc_ptrace = ctypes.CDLL(None, use_errno=True).ptrace
    libc_ptrace.restype = ctypes.c_long

    def call(request: int, pid: int, addr: int, data: int | ctypes.c_void_p) -> int:
        result = libc_ptrace(request, pid, addr, data)
        if result == -1:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
        return result

    return call

def write_trace_filter(watched_fd: int):
    """A libseccomp filter: write(watched_fd, ...) -> SECCOMP_RET_TRACE, everything else allowed: a
    write to another descriptor (stderr ...) never stops the target."""
    try:
        import seccomp
    except ImportError:
        raise ObserverUnavailable("the seccomp strategy needs libseccomp's Python bindings "
                                  "(Debian python3-seccomp; `make setup` installs it)") from None
    seccomp_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    seccomp_filter.add_rule(seccomp.TRACE(0), "write", seccomp.Arg(0, seccomp.EQ, watched_fd))
    if CAP_SYS_ADMIN in effective_capabilities():
        # libseccomp sets no_new_privs by default, which the target can see in
        # /proc/self/status. Only a process without CAP_SYS_ADMIN needs it to load a filter.
        seccomp_filter.set_attr(seccomp.Attr.CTL_NNP, 0)
    return seccomp_filter

def busy_wait(ns: int) -> None:
    until = time.monotonic_ns() + ns
    while time.monotonic_ns() < until:
        pass

def stopped_processes() -> set[str]:
    found = set()
    for process in psutil.process_iter(["pid", "name", "status"]):
        if process.info["status"] in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
            found.add(f"PID {process.info['pid']} ({process.info['name']}) {process.info['status']}")
    return found

def tgid_of(tid: int) -> int | None:
    return proc_status_field(tid, "Tgid")

def read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
