"""Processes as the backends meet them: the capabilities this process holds, another process's
status and memory, the thread group a thread belongs to, a launched child that dies with
tapbench and runs as the user it should, a PID or a name checked before anything watches it,
and the output of an observer that is itself a program (strace, bpftrace)."""
from __future__ import annotations

import ctypes
import os
import pwd
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import psutil

from methods.protocol import ObserverError

if TYPE_CHECKING:
    from methods.protocol import MoveEvent


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


CAP_SYS_RAWIO, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 17, 21, 38, 39
# Set by the least-privilege probes: backends skip their own capability pre-check, so that the
# kernel itself says whether a capability set is enough.
SKIP_CAPABILITY_PRECHECK = "TAPBENCH_SKIP_CAPABILITY_PRECHECK"
CAPABILITY_NAMES = {CAP_SYS_RAWIO: "CAP_SYS_RAWIO", CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_PERFMON: "CAP_PERFMON",
                    CAP_BPF: "CAP_BPF"}


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


class ThreadProcesses(dict):
    """tid -> the process (thread group) the thread belongs to, asked of the kernel the first
    time the thread is seen, so an event from a child process of the target is not taken for
    the target's. A thread already gone cannot be placed: it counts as its own process (and so
    as a wrong process, unless it was the main thread) and is counted in `unresolved`."""

    def __init__(self) -> None:
        super().__init__()
        self.unresolved = 0

    def __missing__(self, tid: int) -> int:
        tgid = proc_status_field(tid, "Tgid")
        if tgid is None:
            self.unresolved += 1
            tgid = tid
        self[tid] = tgid
        return tgid


class ProcessMemory:
    """Reads other processes' memory with pread on /proc/PID/mem: one plain system call from
    Python, 0.5 µs here for 32 bytes against 1.3 µs for process_vm_readv through ctypes.

    A descriptor is kept per process. One opened before the process exec'd still shows the old
    program and reads nothing, so a read that gets nothing is tried once more on a new one.
    Another user's process is read with process_vm_readv: the file's mode admits only its owner
    (or CAP_DAC_OVERRIDE), where process_vm_readv asks only for ptrace access (CAP_SYS_PTRACE)."""

    MAX_OPEN = 64  # a target that forks many writers must not exhaust our descriptors

    def __init__(self) -> None:
        self._descriptors: dict[int, int | None] = {}  # None: the file refused us
        self._process_vm_readv = ctypes.CDLL(None, use_errno=True).process_vm_readv
        self._process_vm_readv.restype = ctypes.c_ssize_t

    def read(self, pid: int, address: int, size: int) -> bytes:
        """Up to size bytes at address; fewer where the memory ends, b"" where it is unreadable
        (an unmapped buffer, a process gone)."""
        data = self._read(pid, address, size)
        if data or not size:
            return data
        self.forget(pid)
        return self._read(pid, address, size)

    def _read(self, pid: int, address: int, size: int) -> bytes:
        if pid not in self._descriptors:
            if len(self._descriptors) >= self.MAX_OPEN:
                self.close()
            try:
                self._descriptors[pid] = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
            except PermissionError:
                self._descriptors[pid] = None
            except OSError:
                return b""  # gone
        descriptor = self._descriptors[pid]
        if descriptor is None:
            return self._read_across_users(pid, address, size)
        try:
            return os.pread(descriptor, size, address)
        except OSError:
            return b""

    def _read_across_users(self, pid: int, address: int, size: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        local, remote = _Iovec(ctypes.addressof(buffer), size), _Iovec(address, size)
        read = self._process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        return buffer.raw[:max(read, 0)]

    def forget(self, pid: int) -> None:
        descriptor = self._descriptors.pop(pid, None)
        if descriptor is not None:
            os.close(descriptor)

    def close(self) -> None:
        for pid in list(self._descriptors):
            self.forget(pid)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a launched child: be killed when tapbench dies, even by SIGKILL, so a target it
    launched never outlives it (PR_SET_PDEATHSIG survives exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
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


@dataclass(frozen=True)
class TargetUser:
    """Who a launched program runs as: tapbench itself may need root, the program it watches
    does not (it may be anyone's). Dropped to in the child after the backend's own steps
    (which may need privileges: a seccomp filter without no_new_privs needs CAP_SYS_ADMIN)
    and before exec; the child's capabilities go with root's uid."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def resolve(cls, wanted: str | None = None) -> "TargetUser":
        """The user named (a name or a number), or by default the one who invoked tapbench:
        under sudo, SUDO_UID and SUDO_GID, otherwise tapbench's own user."""
        if wanted is None:
            sudo_uid = os.environ.get("SUDO_UID")
            if os.geteuid() == 0 and sudo_uid and sudo_uid.isdigit():
                gid = os.environ.get("SUDO_GID", "")
                return cls._of_uid(int(sudo_uid), int(gid) if gid.isdigit() else None)
            return cls.current()
        try:
            entry = pwd.getpwnam(wanted)
        except KeyError:
            if not wanted.isdigit():
                raise ObserverError(f"--user: no user named {wanted!r} on this machine") from None
            return cls._of_uid(int(wanted), None)
        return cls._of_uid(entry.pw_uid, entry.pw_gid)

    @classmethod
    def current(cls) -> "TargetUser":
        """tapbench's own user."""
        return cls._of_uid(os.geteuid(), os.getegid())

    @classmethod
    def _of_uid(cls, uid: int, gid: int | None) -> "TargetUser":
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:  # a number without a passwd entry: its own group, no others
            return cls(str(uid), uid, uid if gid is None else gid, ())
        gid = entry.pw_gid if gid is None else gid
        groups = tuple(sorted(set(os.getgrouplist(entry.pw_name, gid))))
        return cls(entry.pw_name, uid, gid, groups)

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid() and self.gid == os.getegid()

    def check_can_switch(self) -> None:
        """Refuse, before anything runs, a user this process cannot become."""
        if not self.is_current and os.geteuid() != 0:
            raise ObserverError(f"cannot run the target as {self.name} (uid {self.uid}): only root can "
                                "switch users; leave out --user to run it as yourself")

    def become(self) -> None:
        """In the launched child, before exec: this user, with its groups."""
        os.setgroups(list(self.groups))
        os.setgid(self.gid)
        os.setuid(self.uid)

    def setpriv_options(self) -> list[str]:
        """The same, for a command run through setpriv (strace's child)."""
        groups = ["--groups", ",".join(map(str, self.groups))] if self.groups else ["--clear-groups"]
        return [f"--reuid={self.uid}", f"--regid={self.gid}", *groups]
