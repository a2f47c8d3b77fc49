"""seccomp user-notification observer: the target's write(1, ...) calls are handed to tapbench,
which reads the buffer and lets each call go on, unchanged.

Launch only. Before exec, the child installs a libseccomp filter that returns
SECCOMP_RET_USER_NOTIF for write() on fd 1 and allows everything else, and passes the filter's
listener descriptor to tapbench over a socketpair (SCM_RIGHTS). For each write tapbench:
  SECCOMP_IOCTL_NOTIF_RECV   takes the notification (thread, system call, arguments);
  pread of /proc/PID/mem     copies the first bytes of the buffer (ProcessMemory);
  SECCOMP_IOCTL_NOTIF_SEND   answers SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel runs the
                             write as if nothing had happened.
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6+) is asked for, so the kernel wakes the target on
this CPU when the answer comes; whether it was granted is recorded.

Go's preemption signals interrupt notified writes. RECV then fails with ENOENT (the task left
before it was received: try again), or SEND does (the write will be notified again when Go
restarts it): that notification is not a move, it is counted as retried. RECV blocks forever
once the target has gone, so the listener is polled and POLLHUP ends the loop.

When the listener hangs up depends on the kernel. It hangs up when the last task under the
filter drops it: at that task's exit on the 6.18 machines, but only when the task is reaped
on 5.10 and 6.1 (release_task()). There, a loop that waited for POLLHUP while the target lay
unreaped (tapbench reaps it after the loop) waited forever: the hang seen on those kernels,
with or without SYNC_WAKE_UP. So when nothing has come for a poll period the loop looks at the
target's pidfd (never at every write: that would cost each one a second fd to poll), and once
the target has exited with nothing left to receive it reaps it itself (wait4, keeping its usage);
the hang-up then comes when every other task under the filter (the target's children) is gone
too. Whether the kernel hung up before that reaping is recorded (hangup_at_exit).

One race remains in the kernel: a signal that wakes the task before RECV, with RECV and SEND
both done before the task takes the notifier's lock again, loses the reply although SEND
succeeded; the write is restarted and notified again, so it is seen twice. The filter is
therefore loaded with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19+; libseccomp 2.5 has
no attribute for it, so the filter libseccomp builds is loaded with seccomp(2) directly): once
received, a notification is no longer interrupted, which leaves only that narrow window. The
verifier counts what is left as phantoms; nothing is hidden.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

from methods.base import Observer, ObserverError, ObserverUnavailable

from methods import options as shared
from methods.options import Options
from methods.protocol import CAPTURE_BYTES, MoveEvent
from methods._kernel.process import CAP_SYS_ADMIN, effective_capabilities, ProcessMemory, ThreadProcesses
from methods.spec import FEW_MOVES, SweepSpec

# <linux/seccomp.h>
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # struct seccomp_notif, 80 bytes, zeroed before the call
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # struct seccomp_notif_resp, 24 bytes
SECCOMP_IOCTL_NOTIF_SET_FLAGS = 0x40082104  # the flag is the argument, not a pointer
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
# struct seccomp_notif: id, pid, flags, then struct seccomp_data: nr, arch, ip, args[6]
NOTIF = struct.Struct("<QIIiIQQQQQQQ")
RESPONSE = struct.Struct("<QqiI")  # id, val, error, flags
SYSCALL_WRITE_NR = 1  # x86-64
SYS_SECCOMP, SECCOMP_SET_MODE_FILTER = 317, 1  # x86-64
SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 3, 1 << 5
PR_SET_NO_NEW_PRIVS = 38
BPF_INSTRUCTION_SIZE = 8  # struct sock_filter
POLL_MS = 100  # how often the loop looks at stop() while the target writes nothing


@dataclass(frozen=True)
class UnotifyOptions(Options):
    capture: str | None = shared.capture()


class UnotifyObserver(Observer):
    method = "unotify"
    follows_children = True  # the filter is inherited across fork and exec; each thread's process is asked
    description = "seccomp user notification: write(1, ...) handed to tapbench, read, continued"
    # the target waits for tapbench at every write: fewer moves
    sweep = SweepSpec(moves=FEW_MOVES, gate_moves=3_000, primary_group="seccomp")
    dependence = ("seccomp user notification (Linux 5.0+), SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
                  "(5.19+) against a reply-lost race with signals, SYNC_WAKE_UP (6.6+); libseccomp to "
                  "build the filter; launch only; x86-64 system-call numbers")
    default_placement = "shared"
    can_attach = False
    # No loss count: a notified write waits for tapbench's answer, so nothing can be dropped.
    Options = UnotifyOptions

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._count_only = self.options.capture == "count"  # the floor: the same notification, no memory read
        self.sync_wake_up: bool | None = None  # granted by the kernel (6.6+)?
        self.wait_killable_recv: bool | None = None  # granted by the kernel (5.19+)?
        self.retried = 0  # notifications of writes that were interrupted and will come again
        self.hangup_at_exit: bool | None = None  # the listener hung up before we reaped the target?
        self._listener: int | None = None
        self._parent_end: socket.socket | None = None
        self._child_end: socket.socket | None = None
        self._processes = ThreadProcesses()  # a thread's process, asked at its first write
        self._notification = bytearray(NOTIF.size)
        self._zeroes = bytes(NOTIF.size)
        self._memory = ProcessMemory()

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        try:
            import seccomp
        except ImportError:
            return ("libseccomp's Python bindings are missing (Debian python3-seccomp; "
                    "`make setup` installs it)")
        if not hasattr(seccomp, "NOTIFY"):
            return "this libseccomp has no user notification (SCMP_ACT_NOTIFY, libseccomp 2.5+)"
        return None

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        return ("a seccomp filter can only be installed by the process itself, before exec: "
                "unotify works at launch")

    def facts(self) -> dict:
        return {"sync_wake_up": self.sync_wake_up, "wait_killable_recv": self.wait_killable_recv,
                "retried": self.retried, "threads_unresolved": self._processes.unresolved,
                "hangup_at_exit": self.hangup_at_exit}

    # --- starting -----------------------------------------------------------------------
    def launch(self, argv, **kwargs):
        self._parent_end, self._child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._pass_fds = (self._child_end.fileno(),)
        try:
            return super().launch(argv, **kwargs)
        finally:
            self._child_end.close()  # the child holds its copy; ours must not keep it open

    def _own_process(self, popen: subprocess.Popen) -> "NotifiedChild":
        return NotifiedChild(popen)

    def _child_steps(self):
        program = _notify_program(self.watched_fd)
        set_no_new_privs = CAP_SYS_ADMIN not in effective_capabilities()
        child_end = self._child_end
        libc = ctypes.CDLL(None, use_errno=True)

        def install_and_hand_over():
            # Only a process without CAP_SYS_ADMIN needs no_new_privs (visible to the target
            # in /proc/self/status) to load a filter: it is not set where it is not needed.
            if set_no_new_privs and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(126)
            killable = b"K"
            listener = libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER,
                                    SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                                    ctypes.byref(program))
            if listener < 0 and ctypes.get_errno() == errno.EINVAL:  # before Linux 5.19
                killable = b"I"
                listener = libc.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER,
                                        SECCOMP_FILTER_FLAG_NEW_LISTENER, ctypes.byref(program))
            if listener < 0:
                os._exit(126)
            socket.send_fds(child_end, [killable], [listener])
            os.close(listener)  # the child must not answer its own notifications

        return [install_and_hand_over]

    def _observe(self, pid: int) -> None:
        self._parent_end.settimeout(10)
        try:
            message, fds, _, _ = socket.recv_fds(self._parent_end, 1, 1)
        except (OSError, socket.timeout) as error:
            raise ObserverError(f"the launched process sent no seccomp listener ({error})") from None
        if not fds:
            raise ObserverError("the launched process could not install the seccomp filter "
                                "(seccomp(2) refused it: a kernel without user notification?)")
        self._listener = fds[0]
        self.wait_killable_recv = message == b"K"
        try:
            fcntl.ioctl(self._listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
            self.sync_wake_up = True
        except OSError:
            self.sync_wake_up = False  # before Linux 6.6: the target is woken on any CPU

    # --- events -------------------------------------------------------------------------
    def events(self) -> Iterator[MoveEvent]:
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        notification, zeroes, listener = self._notification, self._zeroes, self._listener
        while not self._stopping:
            ready = poller.poll(POLL_MS)
            if not ready:
                # Nothing to receive for a poll period: the target may have exited unreaped on a
                # kernel that hangs the listener up only at reaping (see the module's doc). Its
                # pidfd is looked at only here, not at every write: the hot path polls one fd.
                if self.process.returncode is None and self.target_exited():
                    self._reap_unless_hung_up()
                continue
            if not ready[0][1] & select.POLLIN:
                if self.hangup_at_exit is None:
                    self.hangup_at_exit = True
                break  # POLLHUP: every task under the filter has exited
            notification[:] = zeroes  # RECV refuses a struct that is not zeroed
            try:
                fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, notification, True)
            except InterruptedError:
                continue
            except OSError as error:
                if error.errno == errno.ENOENT:
                    continue  # the task was interrupted before we took it: it will come again
                raise
            stopped_ns = time.monotonic_ns()
            notification_id, tid, _, nr, _, _, fd, buf, count, _, _, _ = NOTIF.unpack(notification)
            watched = nr == SYSCALL_WRITE_NR and fd == self.watched_fd
            head = self._read_head(tid, buf, count) if watched and not self._count_only else None
            try:
                fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND,
                            RESPONSE.pack(notification_id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE))
            except OSError as error:
                if error.errno == errno.ENOENT:
                    # Interrupted while we read it (Go's preemption signal): the write will be
                    # restarted and notified again. Counting it now would make a phantom.
                    self.retried += 1
                    continue
                raise
            if watched and self._count_only:
                self.counters.counted += 1
            elif head is not None:
                self.counters.captured += 1
                self.counters.bytes += count
                yield MoveEvent(stopped_ns, time.monotonic_ns(), self._processes[tid], tid, head)

    def _reap_unless_hung_up(self) -> None:
        """The target has exited and nothing waits to be received. A kernel that drops the
        filter at exit hangs the listener up now (what is left of the exit path is given one
        poll period); one that drops it when the task is reaped (5.10, 6.1) needs the target
        reaped first."""
        listener = select.poll()
        listener.register(self._listener, select.POLLIN)
        ready = listener.poll(POLL_MS)
        if ready and ready[0][1] & select.POLLIN:
            return  # a child of the target's wrote meanwhile: the loop takes it
        if not ready:
            self.hangup_at_exit = False
            self.process.reap()

    def _read_head(self, tid: int, buf: int, count: int) -> bytes:
        return self._memory.read(self._processes[tid], buf, min(count, CAPTURE_BYTES))

    # --- cleanup ------------------------------------------------------------------------
    def close(self) -> None:
        # Closing the listener first: a write still waiting for an answer then fails with
        # ENOSYS instead of blocking; the launched target is killed right after anyway.
        if self._listener is not None:
            os.close(self._listener)
            self._listener = None
        if self._parent_end is not None:
            self._parent_end.close()
            self._parent_end = None
        self._memory.close()
        super().close()


class NotifiedChild:
    """What launch() returns: the launched Popen, which events() may reap itself once it has
    exited (see the module's doc). Reaped with wait4, so its resource usage is kept (rusage)
    for the harness, as for a Popen it reaps."""

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        self.pid = popen.pid
        self.stdout, self.stderr = popen.stdout, popen.stderr
        self.rusage = None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def reap(self, options: int = 0) -> int | None:
        """wait4 the child (options: os.WNOHANG not to block); its exit code once reaped."""
        if self._popen.returncode is None:
            pid, status, usage = os.wait4(self.pid, options)
            if pid:
                self._popen.returncode, self.rusage = os.waitstatus_to_exitcode(status), usage
        return self._popen.returncode

    def poll(self) -> int | None:
        return self.reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None and self.returncode is None:
            exited = os.pidfd_open(self.pid)
            try:
                if not select.select([exited], [], [], timeout)[0]:
                    raise subprocess.TimeoutExpired(f"PID {self.pid}", timeout)
            finally:
                os.close(exited)
        return self.reap()

    def kill(self) -> None:
        if self._popen.returncode is None:
            self._popen.kill()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _notify_program(watched_fd: int) -> _SockFprog:
    """The BPF of a libseccomp filter: write(watched_fd, ...) -> SECCOMP_RET_USER_NOTIF, everything else
    allowed; built in the parent, loaded by the child with seccomp(2)."""
    try:
        import seccomp
    except ImportError:
        raise ObserverUnavailable("libseccomp's Python bindings are missing (python3-seccomp)") from None
    notify_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    notify_filter.add_rule(seccomp.NOTIFY, "write", seccomp.Arg(0, seccomp.EQ, watched_fd))
    with tempfile.TemporaryFile() as exported:
        notify_filter.export_bpf(exported)
        exported.seek(0)
        code = exported.read()
    instructions = ctypes.create_string_buffer(code, len(code))
    program = _SockFprog(len(code) // BPF_INSTRUCTION_SIZE, ctypes.addressof(instructions))
    program.instructions = instructions  # kept alive as long as the program
    return program
