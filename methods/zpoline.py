"""zpoline observer: preload/zpoline.c, loaded with LD_PRELOAD, rewrites every `syscall`
instruction of the target into `call *%rax` and maps a trampoline at address 0, so every
system call, libc's and Go's raw ones, passes through it in the target's own thread. Writes to
the watched descriptor go through preload's ring (the same consumer, the same checks).

Launch only, like preload: a static binary never loads it ("static binary: LD_PRELOAD not
applied"). Mapping page 0 needs vm.mmap_min_addr = 0, a machine-wide weakening (NULL pages
become mappable for every process): it is set just before the launch, under a lock, and put
back as soon as the hook says its page is mapped (or the target has ended, or a time limit
passed), and on every exit path. What it was is kept in a file until then, so that a run killed
meanwhile is found and undone by the next (`clean_leftovers`).
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from methods.base import ObserverError
from methods._kernel.inprocess import FAILED, SET_UP, SyscallHookObserver
from methods._kernel.preload_ring import cpu_flags, is_static_executable
from methods._kernel.process import CAP_SYS_RAWIO, SKIP_CAPABILITY_PRECHECK, effective_capabilities
from methods.spec import SweepSpec

ZPOLINE_LIBRARY = Path(__file__).resolve().parent.parent / "preload" / "libtapbench_zpoline.so"
MMAP_MIN_ADDR = Path("/proc/sys/vm/mmap_min_addr")
# Where the value before tapbench's change waits while the change lasts; /run empties at boot,
# as the setting itself resets.
SAVED_MIN_ADDR = Path("/run/tapbench-mmap-min-addr")
LOCK_FILE = Path("/run/tapbench-mmap-min-addr.lock")


def _read_min_addr() -> int:
    return int(MMAP_MIN_ADDR.read_text())


def _write_min_addr(value: int) -> None:
    MMAP_MIN_ADDR.write_text(f"{value}\n")


class ZpolineObserver(SyscallHookObserver):
    method = "zpoline"
    description = ("zpoline: every syscall instruction rewritten to call *%rax into a trampoline at "
                   "address 0 (LD_PRELOAD), events through the preload ring")
    dependence = ("dynamically linked x86-64 programs only (LD_PRELOAD); libopcodes decides which bytes "
                  "are syscall instructions; vm.mmap_min_addr = 0 during the launch, for the whole "
                  "machine; the call's return address lands in the caller's red zone")
    library = ZPOLINE_LIBRARY
    # its headline row is on cgo, where Go's raw system calls pass through it, beside ptrace
    sweep = SweepSpec(options={"ring_slots": 1 << 20}, primary_group="zpoline on cgo")
    hook_states = {0: "not set up", SET_UP: "trampoline mapped at address 0, text rewritten",
                   FAILED: "its trampoline could not be mapped at address 0 (vm.mmap_min_addr, or a mapping there)"}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._lock_fd: int | None = None  # held while vm.mmap_min_addr is tapbench's 0
        self._min_addr_before: int | None = None
        self._lowered_at = 0.0
        self.rewritten_sites: int | None = None
        self.min_addr_lowered_s: float | None = None  # how long the machine ran with it at 0

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        reason = super().unavailable_reason(**options)
        if reason is None and not os.environ.get(SKIP_CAPABILITY_PRECHECK) and (
                not os.access(MMAP_MIN_ADDR, os.W_OK) or CAP_SYS_RAWIO not in effective_capabilities()):
            return (f"needs root with CAP_SYS_RAWIO: {MMAP_MIN_ADDR} must be set to 0 while the target "
                    "maps its trampoline")
        return reason

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        return "LD_PRELOAD works only at launch, and a running process's text cannot be rewritten from outside"

    @classmethod
    def leftovers(cls) -> set[str]:
        if not SAVED_MIN_ADDR.exists():
            return set()
        return {f"vm.mmap_min_addr = {_read_min_addr()}, lowered by tapbench from {SAVED_MIN_ADDR.read_text().strip()}"}

    @classmethod
    def clean_leftovers(cls) -> list[str]:
        """Put back a vm.mmap_min_addr that a killed run lowered, unless a run is lowering it now.
        Never raises: a clean-up that cannot (no CAP_SYS_RAWIO here) says so and leaves it."""
        if not SAVED_MIN_ADDR.exists():
            return []
        try:
            with open(LOCK_FILE, "a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return []  # a live run holds it and puts it back itself
                return [cls._restore_saved()]
        except (OSError, ValueError) as error:
            return [f"could not put vm.mmap_min_addr back from {SAVED_MIN_ADDR} ({error}): "
                    "run tapbench as root to do it"]

    @staticmethod
    def _restore_saved() -> str:
        before = int(SAVED_MIN_ADDR.read_text())
        if _read_min_addr() != before:
            _write_min_addr(before)
        SAVED_MIN_ADDR.unlink()
        return f"put vm.mmap_min_addr back to {before}"

    def facts(self) -> dict:
        return {**super().facts(), "rewritten_sites": self.rewritten_sites,
                "null_page_readable": "pku" not in cpu_flags(),
                "mmap_min_addr_lowered_s": self.min_addr_lowered_s}

    def launch(self, argv, **kwargs):
        if is_static_executable(argv[0]):
            return super().launch(argv, **kwargs)  # it never loads the hook: nothing to lower
        self._lower_min_addr()
        try:
            return super().launch(argv, **kwargs)
        except BaseException:
            self._restore_min_addr()
            raise

    def _lower_min_addr(self) -> None:
        """vm.mmap_min_addr to 0, under the lock, its value kept in SAVED_MIN_ADDR; or an
        ObserverError, with nothing changed and nothing held."""
        try:
            self._lock_fd = os.open(LOCK_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise ObserverError(f"cannot open {LOCK_FILE} ({error.strerror}): zpoline needs root") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # another zpoline launch finishes first
            if SAVED_MIN_ADDR.exists():  # a killed run's: the value before it is the one to keep
                self._restore_saved()
            before = _read_min_addr()
            SAVED_MIN_ADDR.write_text(f"{before}\n")
            try:
                _write_min_addr(0)
            except OSError as error:  # without CAP_SYS_RAWIO: nothing was changed
                SAVED_MIN_ADDR.unlink()
                raise ObserverError(f"cannot set {MMAP_MIN_ADDR} to 0 for the trampoline ({error.strerror}): "
                                    "zpoline needs root with CAP_SYS_RAWIO") from None
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._min_addr_before = before
        self._lowered_at = time.monotonic()

    def _restore_min_addr(self) -> None:
        if self._lock_fd is None:
            return
        try:
            if self._min_addr_before is not None:
                _write_min_addr(self._min_addr_before)
                SAVED_MIN_ADDR.unlink(missing_ok=True)
                self.min_addr_lowered_s = round(time.monotonic() - self._lowered_at, 4)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None
            self._min_addr_before = None

    def _hook_settled(self) -> None:
        self._restore_min_addr()

    def _read_counters(self) -> None:
        super()._read_counters()
        if self.target_damage is None and self.hook_state == SET_UP:
            self.rewritten_sites = int(self._header[0]["rewritten_sites"])

    def close(self) -> None:
        self._restore_min_addr()
        super().close()
