"""What the two in-process exhaustive hooks, zpoline and sud, share on this side: preload's
ring and its consumer (the same checks), and the hook's start-up state, which the hook writes
into the ring's header and wakes a futex on (preload/syscall_hook.h). Not a technique itself
(it declares no method): methods/zpoline.py and methods/sud.py are.

Both hooks see every system call of the process, libc's and Go's raw ones, so a miss is a
failed capture, never a finding, except on a static binary, which never loads them.
"""
from __future__ import annotations

import ctypes
import os
import time
from typing import ClassVar

from methods.base import ObserverError
from methods._kernel.preload_ring import FUTEX_WAIT, HEADER, SYS_FUTEX, Timespec
from methods.preload import PreloadObserver

# How long a launch may take from release to the hook being in place (zpoline rewrites the
# program's and its libraries' text, ~0.2-0.3 s here) before the observer stops waiting for it.
HOOK_WAIT_S = 20.0
SET_UP, FAILED = 1, 2  # the header's hook state; 0: not (yet) set up


class SyscallHookObserver(PreloadObserver):
    method = ""  # not a technique: not registered (it would take preload's name)
    targets = ("cgo", "libc")  # every system call of the process passes the hook
    claims = ()
    article_name = None
    # The header's hook state in words, per technique (0 and FAILED, SET_UP).
    hook_states: ClassVar[dict[int, str]] = {}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.hook_state = 0

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        reason = super().unavailable_reason(**options)
        if reason is None and os.uname().machine != "x86_64":
            return f"its hook is x86-64 code; this machine is {os.uname().machine}"
        return reason

    def facts(self) -> dict:
        return {**super().facts(), "hook": self.hook_states.get(self.hook_state, "unknown")}

    def release(self) -> None:
        """Let the target run, then wait until its hook is in place (or failed: an error), so
        that a launch that failed is said at once, not as an empty capture."""
        super().release()
        if self._header is None or self._static:  # a static program never loads the hook
            return
        try:
            self._wait_for_hook()
        finally:
            self._hook_settled()
        self._check_hook_set_up()

    def _hook_settled(self) -> None:
        """What the technique undoes once its hook is in place, failed, or never came."""

    def _wait_for_hook(self) -> None:
        """Sleep on the header's hook-state word, which the hook wakes once it has set it, until
        it is set, the target has ended or HOOK_WAIT_S have passed: no polling, so the wait
        costs the observer no CPU while the hook sets itself up."""
        word = ctypes.c_void_p(self._header.ctypes.data + HEADER.fields["hook_state"][1])
        deadline = time.monotonic() + HOOK_WAIT_S
        while self._hook_state() == 0 and time.monotonic() < deadline and not self.target_exited(0):
            timeout = Timespec(0, 50_000_000)  # to look at the target and the clock again
            self._libc.syscall(SYS_FUTEX, word, FUTEX_WAIT, 0, ctypes.byref(timeout), None, 0)

    def _hook_state(self) -> int:
        return int(self._header[0]["hook_state"]) if self._header is not None else 0

    def _check_hook_set_up(self) -> None:
        if self._hook_state() == FAILED:
            raise ObserverError(f"the {self.method} hook could not set itself up: "
                                f"{self.hook_states[FAILED]}")

    def _read_counters(self) -> None:
        super()._read_counters()
        if self.target_damage is not None:
            return
        state = int(self._header[0]["hook_state"])
        if state not in self.hook_states:
            self._damaged(f"its hook state is {state}, not one the hook writes")
            return
        self.hook_state = state

    def not_applicable(self, expected: int) -> str | None:
        if not self.hook_loaded:
            return "static binary: LD_PRELOAD not applied" if self._static else None
        return None  # every write passes the hook: a miss is a failed capture
