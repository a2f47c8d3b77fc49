"""The kernel features the techniques need, each probed for real on the running kernel (a
system call tried, never a version number read): run inside each guest of `tapbench kernels`,
and natively for the running kernel's column.

    python -m bench.kernels.features      # prints {feature: {"present": bool, "detail": str}}

Every probe that changes something undoes it: a filter or a dispatch switched on in a child
that exits, vm.mmap_min_addr lowered under zpoline's lock and saved where `tapbench cleanup`
finds it, BPF objects closed.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import resource
import select
import signal
import socket
import struct
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from bench.run.targets import BIN_DIR, OPPONENT_NAME

LIBC = ctypes.CDLL(None, use_errno=True)
SYS_BPF, SYS_PERF_EVENT_OPEN, SYS_SECCOMP = 321, 298, 317  # x86-64
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN = 0, 5, 17
BPF_MAP_TYPE_RINGBUF = 27  # Linux 5.8
BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_RAW_TRACEPOINT = 2, 5, 17
RETURN_ZERO = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
PERF_TYPE_TRACEPOINT, PERF_FLAG_FD_CLOEXEC, PERF_EVENT_IOC_SET_BPF = 2, 8, 0x40042408
PERF_ATTR = struct.Struct("<IIQQQQQIIQQ")  # type, size, config, ..., config1, config2 (72 of 112 bytes)
PERF_ATTR_SIZE = 112
TRACEFS = Path("/sys/kernel/tracing")
UPROBE_TYPE = Path("/sys/bus/event_source/devices/uprobe/type")
PTRACE_TRACEME, PTRACE_GET_SYSCALL_INFO = 0, 0x420E  # Linux 5.3
SECCOMP_SET_MODE_FILTER, SECCOMP_GET_ACTION_AVAIL = 1, 2
SECCOMP_RET_USER_NOTIF, SECCOMP_RET_ALLOW = 0x7FC00000, 0x7FFF0000  # notification: Linux 5.0
SECCOMP_FILTER_FLAG_NEW_LISTENER, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 3, 1 << 5  # 5.0, 5.19
SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 0x40082104, 1  # 6.6
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, PR_SYS_DISPATCH_ON = 59, 0, 1  # 5.11
CAP_LAST_CAP, CAP_BPF = Path("/proc/sys/kernel/cap_last_cap"), 39  # CAP_PERFMON 38, CAP_BPF 39: 5.8
HANGUP_WAIT_MS = 200


class Probe:
    """The answer of one probe: the feature is there or not, and what the kernel said."""

    def __init__(self, present: bool, detail: str):
        self.present, self.detail = present, detail

    def as_dict(self) -> dict:
        return {"present": self.present, "detail": self.detail}


def _errno_text(code: int | None = None) -> str:
    code = ctypes.get_errno() if code is None else code
    return f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"


def _bpf(command: int, attr: bytes) -> tuple[int, int]:
    buffer = ctypes.create_string_buffer(attr, 128)
    result = LIBC.syscall(SYS_BPF, command, buffer, 128)
    return result, ctypes.get_errno() if result < 0 else 0


def _load_program(program_type: int) -> tuple[int, int]:
    """A program that returns 0, of this type: (descriptor, errno)."""
    code = ctypes.create_string_buffer(RETURN_ZERO, len(RETURN_ZERO))
    license_text = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack("<IIQQ", program_type, len(RETURN_ZERO) // 8, ctypes.addressof(code),
                       ctypes.addressof(license_text))
    return _bpf(BPF_PROG_LOAD, attr)


def btf() -> Probe:
    path = Path("/sys/kernel/btf/vmlinux")
    if not path.exists():
        return Probe(False, f"{path} does not exist (a kernel built without CONFIG_DEBUG_INFO_BTF)")
    return Probe(True, f"{path}, {path.stat().st_size:,} bytes")


@contextmanager
def _memlock_unlimited():
    """Before 5.11 BPF maps are charged to RLIMIT_MEMLOCK (64 KiB by default): raised while
    held, as libbpf and bcc raise it, put back after."""
    before = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):  # without CAP_SYS_RESOURCE: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (before[1], before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, before)


def ring_buffer() -> Probe:
    with _memlock_unlimited():
        fd, code = _bpf(BPF_MAP_CREATE, struct.pack("<IIII", BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 16))
    if fd < 0:
        return Probe(False, f"bpf(BPF_MAP_CREATE, BPF_MAP_TYPE_RINGBUF): {_errno_text(code)}")
    os.close(fd)
    return Probe(True, "bpf(BPF_MAP_CREATE, BPF_MAP_TYPE_RINGBUF) made a 64 KiB ring")


def raw_tracepoint() -> Probe:
    program, code = _load_program(BPF_PROG_TYPE_RAW_TRACEPOINT)
    if program < 0:
        return Probe(False, f"bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_RAW_TRACEPOINT): {_errno_text(code)}")
    try:
        name = ctypes.create_string_buffer(b"sys_enter")
        link, code = _bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("<QI", ctypes.addressof(name), program))
        if link < 0:
            return Probe(False, f"bpf(BPF_RAW_TRACEPOINT_OPEN, sys_enter): {_errno_text(code)}")
        os.close(link)
        return Probe(True, "a program attached to raw tracepoint sys_enter with bpf() alone")
    finally:
        os.close(program)


def _perf_event_with_program(perf_type: int, config: int, program_type: int, what: str,
                             config1: int = 0, config2: int = 0) -> Probe:
    """perf_event_open of (perf_type, config), then a BPF program of program_type attached."""
    attr = PERF_ATTR.pack(perf_type, PERF_ATTR_SIZE, config, 1, 0, 0, 0, 1, 0, config1, config2)
    buffer = ctypes.create_string_buffer(attr, PERF_ATTR_SIZE)
    event = LIBC.syscall(SYS_PERF_EVENT_OPEN, buffer, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if event < 0:
        return Probe(False, f"perf_event_open({what}): {_errno_text()}")
    try:
        program, code = _load_program(program_type)
        if program < 0:
            return Probe(False, f"bpf(BPF_PROG_LOAD) for {what}: {_errno_text(code)}")
        try:
            fcntl.ioctl(event, PERF_EVENT_IOC_SET_BPF, program)
        except OSError as error:
            return Probe(False, f"PERF_EVENT_IOC_SET_BPF on {what}: {_errno_text(error.errno)}")
        finally:
            os.close(program)
        return Probe(True, f"a program attached to {what}")
    finally:
        os.close(event)


def tracepoint() -> Probe:
    id_file = TRACEFS / "events/syscalls/sys_enter_write/id"
    try:
        tracepoint_id = int(id_file.read_text())
    except OSError as error:
        return Probe(False, f"{id_file}: {error.strerror} (tracefs, or a kernel without syscall tracepoints)")
    return _perf_event_with_program(PERF_TYPE_TRACEPOINT, tracepoint_id, BPF_PROG_TYPE_TRACEPOINT,
                                     "tracepoint syscalls:sys_enter_write")


def uprobe() -> Probe:
    try:
        uprobe_type = int(UPROBE_TYPE.read_text())
    except OSError as error:
        return Probe(False, f"{UPROBE_TYPE}: {error.strerror} (no uprobe PMU)")
    binary = BIN_DIR / OPPONENT_NAME
    path = ctypes.create_string_buffer(bytes(binary))
    return _perf_event_with_program(uprobe_type, 0, BPF_PROG_TYPE_KPROBE, f"a uprobe on {binary.name}'s entry",
                                    config1=ctypes.addressof(path), config2=_entry_offset(binary))


def _entry_offset(binary: Path) -> int:
    """The file offset of an ELF program's entry point: where a uprobe can be placed."""
    from elftools.elf.elffile import ELFFile

    with open(binary, "rb") as stream:
        elf = ELFFile(stream)
        entry = elf.header["e_entry"]
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_LOAD" and segment["p_vaddr"] <= entry < segment["p_vaddr"] + segment["p_filesz"]:
                return entry - segment["p_vaddr"] + segment["p_offset"]
    raise ValueError(f"{binary}: its entry point lies in no loaded segment")


def _in_child(work: Callable[[], int]) -> int:
    """work() in a forked child, which exits with what it returns: whatever it changes in its
    own process (a filter, a dispatch, a mapping) goes with it. Its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 127
        try:
            code = work()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def ptrace_get_syscall_info() -> Probe:
    pid = os.fork()
    if pid == 0:
        LIBC.ptrace(PTRACE_TRACEME, 0, None, None)
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    try:
        _, status = os.waitpid(pid, 0)
        if not os.WIFSTOPPED(status):
            return Probe(False, "the traced child did not stop")
        info = ctypes.create_string_buffer(128)
        size = LIBC.ptrace(PTRACE_GET_SYSCALL_INFO, pid, ctypes.c_void_p(128), info)
        if size < 0:
            return Probe(False, f"ptrace(PTRACE_GET_SYSCALL_INFO): {_errno_text()}")
        return Probe(True, f"ptrace(PTRACE_GET_SYSCALL_INFO) answered {size} bytes")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _allow_all_program() -> tuple[_SockFprog, ctypes.Array]:
    instructions = ctypes.create_string_buffer(struct.pack("<HBBI", 0x06, 0, 0, SECCOMP_RET_ALLOW), 8)  # ret ALLOW
    return _SockFprog(1, ctypes.addressof(instructions)), instructions


def _new_listener(flags: int = 0) -> int:
    """A seccomp filter that allows everything, with a listener (in the calling process)."""
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    program, _keep = _allow_all_program()
    return LIBC.syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER | flags,
                        ctypes.byref(program))


def seccomp_user_notification() -> Probe:
    action = ctypes.c_uint32(SECCOMP_RET_USER_NOTIF)
    if LIBC.syscall(SYS_SECCOMP, SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(action)) != 0:
        return Probe(False, f"seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_USER_NOTIF): {_errno_text()}")
    return Probe(True, "seccomp(SECCOMP_GET_ACTION_AVAIL) knows SECCOMP_RET_USER_NOTIF")


def _listener_flag(flags: int, then: Callable[[int], int] = lambda fd: 0) -> int:
    """In a child: a listener made with these filter flags, then then(listener); 0 or an errno."""
    def work() -> int:
        listener = _new_listener(flags)
        return (ctypes.get_errno() or 1) if listener < 0 else then(listener)
    return _in_child(work)


def sync_wake_up() -> Probe:
    def set_flags(listener: int) -> int:
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
            return 0
        except OSError as error:
            return error.errno
    code = _listener_flag(0, set_flags)
    if code:
        return Probe(False, f"ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP): {_errno_text(code)}")
    return Probe(True, "ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) accepted")


def wait_killable_recv() -> Probe:
    code = _listener_flag(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
    if code:
        return Probe(False, f"seccomp(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV): {_errno_text(code)}")
    return Probe(True, "a filter loaded with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")


def listener_hangup_at_exit() -> Probe:
    """Does a seccomp listener hang up when its last task exits, or only once it is reaped?
    (tapbench's unotify waits for the hang-up: methods/unotify.py.)"""
    parent_end, child_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        listener = _new_listener()
        socket.send_fds(child_end, [b"L"], [listener] if listener >= 0 else [])
        os._exit(0)
    child_end.close()
    try:
        _, fds, _, _ = socket.recv_fds(parent_end, 1, 1)
        if not fds:
            return Probe(False, "no listener could be made")
        exited = os.pidfd_open(pid)
        select.select([exited], [], [])
        os.close(exited)
        poller = select.poll()
        poller.register(fds[0], select.POLLIN)
        at_exit = bool(poller.poll(HANGUP_WAIT_MS))
        os.waitpid(pid, 0)
        pid = 0
        at_reaping = bool(poller.poll(HANGUP_WAIT_MS))
        os.close(fds[0])
    finally:
        parent_end.close()
        if pid:
            os.waitpid(pid, 0)
    if at_exit:
        return Probe(True, "POLLHUP once the filtered task exited")
    return Probe(False, "POLLHUP only once the exited task was reaped" if at_reaping else "no POLLHUP at all")


def syscall_user_dispatch() -> Probe:
    def switch_on() -> int:
        selector = ctypes.c_ubyte(0)  # SYSCALL_DISPATCH_FILTER_ALLOW: every system call goes on as usual
        if LIBC.prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.byref(selector)) != 0:
            return ctypes.get_errno() or 1
        LIBC.prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0)
        return 0
    code = _in_child(switch_on)
    if code:
        return Probe(False, f"prctl(PR_SET_SYSCALL_USER_DISPATCH, ON): {_errno_text(code)}")
    return Probe(True, "prctl(PR_SET_SYSCALL_USER_DISPATCH) switched it on (and off)")


@contextmanager
def _min_addr_lowered():
    """vm.mmap_min_addr at 0 while held, by zpoline's protocol (its lock; the value before kept
    where `tapbench cleanup` puts it back if this process is killed meanwhile)."""
    from methods.zpoline import ZpolineObserver

    lowering = ZpolineObserver()
    lowering._lower_min_addr()
    try:
        yield
    finally:
        lowering._restore_min_addr()
        lowering.close()


def mmap_at_zero() -> Probe:
    def map_page_zero() -> int:
        LIBC.mmap.restype = ctypes.c_void_p
        LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        address = LIBC.mmap(0, 4096, 3, 0x32, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS|FIXED
        return 0 if address is None else ctypes.get_errno() or 1  # ctypes gives address 0 as None
    try:
        with _min_addr_lowered():
            code = _in_child(map_page_zero)
    except Exception as error:  # the lowering refused (ObserverError): no privilege, or no such sysctl
        return Probe(False, f"vm.mmap_min_addr could not be lowered: {error}")
    if code:
        return Probe(False, f"mmap(0, MAP_FIXED) with vm.mmap_min_addr = 0: {_errno_text(code)}")
    return Probe(True, "a page mapped at address 0 with vm.mmap_min_addr lowered to 0 (and put back)")


def cap_bpf_perfmon() -> Probe:
    last = int(CAP_LAST_CAP.read_text())
    if last < CAP_BPF:
        return Probe(False, f"cap_last_cap is {last}: CAP_PERFMON (38) and CAP_BPF (39) unknown to this kernel")
    return Probe(True, f"cap_last_cap is {last}: CAP_PERFMON (38) and CAP_BPF (39) known")


PROBES: dict[str, Callable[[], Probe]] = {
    "btf": btf, "ring_buffer": ring_buffer, "raw_tracepoint": raw_tracepoint, "tracepoint": tracepoint,
    "uprobe": uprobe, "ptrace_get_syscall_info": ptrace_get_syscall_info,
    "seccomp_user_notification": seccomp_user_notification, "sync_wake_up": sync_wake_up,
    "wait_killable_recv": wait_killable_recv, "listener_hangup_at_exit": listener_hangup_at_exit,
    "syscall_user_dispatch": syscall_user_dispatch, "mmap_at_zero": mmap_at_zero,
    "cap_bpf_perfmon": cap_bpf_perfmon,
}


def probe_all() -> dict[str, dict]:
    """Every probe; one that fails in an unforeseen way is an absent feature, with its error."""
    found = {}
    for name, probe in PROBES.items():
        try:
            found[name] = probe().as_dict()
        except Exception as error:  # a probe's own failure is a finding, not a crash of the matrix
            found[name] = Probe(False, f"the probe failed: {type(error).__name__}: {error}").as_dict()
    return found


def kernel_headers() -> dict:
    """What bcc would compile against here (not a kernel feature: a package beside it)."""
    build = Path("/lib/modules") / platform.release() / "build"
    return {"present": (build / "include").is_dir(), "detail": str(build.resolve()) if build.exists() else f"no {build}"}


if __name__ == "__main__":
    json.dump(probe_all() | {"kernel_headers": kernel_headers()}, sys.stdout, indent=1)
    print()
