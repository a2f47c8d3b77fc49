"""SUD observer: preload/sud.c, loaded with LD_PRELOAD, switches Syscall User Dispatch on
(Linux 5.11, prctl(PR_SET_SYSCALL_USER_DISPATCH)) in every thread of the target, so that every
system call from outside the hook's own text raises SIGSYS in the thread that made it; the
handler sends the thread into the same hook as zpoline's (preload/syscall_hook.h), which
records writes to the watched descriptor into the preload ring. Exhaustive, no rewriting, no
machine-wide setting, at a signal per system call.

It shares the process with Go's runtime only because the hook refuses to let its SIGSYS handler
be replaced and keeps SIGSYS out of every signal mask (preload/sud.c says what broke without
each): the target can see both. Launch only; a static binary never loads it.
"""
from __future__ import annotations

from pathlib import Path

from methods._kernel.inprocess import FAILED, SET_UP, SyscallHookObserver
from methods.spec import SweepSpec

SUD_LIBRARY = Path(__file__).resolve().parent.parent / "preload" / "libtapbench_sud.so"


class SudObserver(SyscallHookObserver):
    method = "sud"
    description = ("Syscall User Dispatch: every system call raises SIGSYS in the target, whose handler "
                   "(LD_PRELOAD) records writes into the preload ring")
    dependence = ("Linux 5.11+ on x86-64; dynamically linked programs only (LD_PRELOAD); the hook keeps "
                  "SIGSYS its own and unblocked (the target reads back what it set); the handler's return address "
                  "lands in the caller's red zone")
    library = SUD_LIBRARY
    # beside zpoline on cgo; a SIGSYS at every system call: fewer moves a gate run
    sweep = SweepSpec(options={"ring_slots": 1 << 20}, gate_moves=20_000, primary_group="zpoline on cgo")
    hook_states = {0: "not set up", SET_UP: "dispatch on, SIGSYS handler installed",
                   FAILED: "dispatch could not be switched on (a kernel before 5.11?) or the handler installed"}

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        return "LD_PRELOAD works only at launch, and dispatch can only be switched on by the thread itself"
