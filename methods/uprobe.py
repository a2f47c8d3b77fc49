"""uprobe observer (bcc): a uprobe inside Go's syscall.write copies each write to stdout into
the same BPF ring buffer the eBPF backend reads, with the same program text
(bpf/write_events.bpf.c, HOOK_GO_UPROBE) and the same reader.

Where it differs from a syscall tracepoint: a uprobe traps only in processes that run the probed
code, so an unrelated program pays nothing, while a second copy of the same binary may pay the
trap whatever the BPF filter says (the bystander measurement shows both). It costs a trap per
call (several µs) where the tracepoint costs a slower system-call path for every process.

The probe is placed past the function's stack check: when a call must grow its stack,
runtime.morestack jumps back to the first instruction, and a probe there would fire twice for
one write. The offset is read from the binary's own code, never assumed. A uretprobe is never
used: it rewrites the return address, which Go's stack copying does not expect.

It sees Go's own writes only: a binary without syscall.write (stripped, inlined, not Go) is a
finding, and so is a cgo build writing through libc's write() (-io libc), which never calls it.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Sequence

from methods.base import ObserverError

from methods._kernel.bpf_loader import BPF_PROG_TYPE_KPROBE
from methods import options as shared
from methods.ebpf import GO_UPROBE_HOOK, EbpfObserver
from methods.options import Options
from methods.spec import FEW_MOVES, SweepSpec

SYMBOL = "syscall.write"
PROBE_FUNCTION = b"on_go_syscall_write"  # in bpf/write_events.bpf.c
# Go's amd64 stack check: cmp rsp (or r12, for a large frame), [r14 + 16]; then jbe to the
# morestack call at the end of the function. The probe goes right after the jbe.
STACK_CHECKS = (bytes.fromhex("493b6610"), bytes.fromhex("4d3b6610"))
PROLOGUE_BYTES = 48


class ProbeSiteMissing(Exception):
    """The binary has no probe site for Go's writes; the message is the finding."""


def probe_site(binary: str) -> tuple[int, bool]:
    """(offset into syscall.write just past its stack check, whether a check was found). A
    function without a check (NOSPLIT) never calls morestack, so its entry is safe."""
    try:
        found = os.stat(binary)
    except OSError as error:
        raise ProbeSiteMissing(f"cannot read {SYMBOL} from {binary}: {error.strerror}") from None
    return _probe_site(binary, found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


# Reading the symbol table took ~50 ms a start: kept per file, for as long as the file is the same.
@lru_cache(maxsize=16)
def _probe_site(binary: str, device: int, inode: int, size: int, mtime_ns: int) -> tuple[int, bool]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(binary, "rb") as stream:
            if stream.read(4) != b"\x7fELF":
                raise ProbeSiteMissing(f"{binary} is not an ELF program (a script?): no {SYMBOL} to probe")
            stream.seek(0)
            elf = ELFFile(stream)
            symbols = elf.get_section_by_name(".symtab")
            if symbols is None:
                raise ProbeSiteMissing(f"{binary} is stripped: no {SYMBOL} to probe")
            found = symbols.get_symbol_by_name(SYMBOL)
            if not found or found[0]["st_info"]["type"] != "STT_FUNC":
                raise ProbeSiteMissing(f"{binary} has no function {SYMBOL} (not Go, or inlined)")
            address = found[0]["st_value"]
            text = next(s for s in elf.iter_sections()
                        if s["sh_addr"] <= address < s["sh_addr"] + s["sh_size"])
            stream.seek(text["sh_offset"] + address - text["sh_addr"])
            code = stream.read(min(PROLOGUE_BYTES, found[0]["st_size"]))
    except (OSError, ELFError, StopIteration) as error:
        raise ProbeSiteMissing(f"cannot read {SYMBOL} from {binary}: {error}") from None
    for start in range(len(code) - 4):
        if code[start:start + 4] in STACK_CHECKS:
            jump = start + 4
            if code[jump:jump + 1] == b"\x76":  # jbe rel8
                return jump + 2, True
            if code[jump:jump + 2] == b"\x0f\x86":  # jbe rel32
                return jump + 6, True
    return 0, False


@dataclass(frozen=True)
class UprobeOptions(Options):
    """The eBPF backend's ring and consumer; no hook, match or loader to choose: the probe is on
    Go's syscall.write of one binary, loaded by bcc (the CO-RE object holds the syscall hooks)."""
    hook: ClassVar[str] = GO_UPROBE_HOOK
    match: ClassVar[str] = "pid"
    loader: ClassVar[str] = "bcc"
    wakeup: str = shared.wakeup()
    poll_ms: int = shared.poll_ms()
    ring_mb: int = shared.ring_mb()
    capture: str | None = shared.capture()
    spin_us: int = shared.spin_us()


class UprobeObserver(EbpfObserver):
    method = "uprobe"
    description = "bcc uprobe inside Go's syscall.write (past its stack check), BPF ring buffer"
    dependence = ("Go's register ABI (1.17+) and a syscall.write symbol that is not stripped or "
                  "inlined; the prologue's stack check, found in the binary; bcc compiles at the first start "
                  "in a process; Go writes only")
    can_attach = True
    targets = ("go", "cgo")  # Go's own writes; -io libc never calls syscall.write
    loss_source = "kernel counter"
    claims = ()  # the article's claims are about the syscall tracepoint, not this
    # a trap at every call: fewer moves
    sweep = SweepSpec(options={"wakeup": "poll"}, moves=FEW_MOVES, gate_moves=3_000, primary_group="uprobe",
                      more={"bystanders, another program": ({"wakeup": "poll"},),
                            "bpf_profile": ({"wakeup": "poll"}, {"wakeup": "poll", "capture": "count"})})
    article_name = None
    can_catch_exec = False  # a uprobe needs the binary's path, not just a name
    Options = UprobeOptions
    extra_functions = {PROBE_FUNCTION: BPF_PROG_TYPE_KPROBE}  # attached by hand, to one binary

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.binary: str | None = None
        self.probe_offset: int | None = None
        self.stack_check_found: bool | None = None
        self.finding: str | None = None  # why there is nothing to probe, if so

    def facts(self) -> dict:
        return super().facts() | {"binary": self.binary, "probe_offset": self.probe_offset,
                                  "stack_check_found": self.stack_check_found}

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        try:
            import elftools  # noqa: F401
        except ImportError:
            return "pyelftools is not installed in this environment (`make setup` installs it)"
        return super().unavailable_reason(**options)

    def launch(self, argv: Sequence[str], **kwargs):
        # The probe goes into the program the gate shell will exec, not into the shell.
        program = os.fspath(argv[0])
        self.binary = os.path.realpath(program if os.sep in program else shutil.which(program) or program)
        return super().launch(argv, **kwargs)

    def attach(self, pid: int) -> None:
        try:
            self.binary = os.readlink(f"/proc/{pid}/exe")
        except OSError as error:
            raise ObserverError(f"cannot read the program of PID {pid}: {error.strerror}") from None
        try:
            probe_site(self.binary)
        except ProbeSiteMissing as missing:
            raise ObserverError(f"PID {pid}: {missing}") from None
        super().attach(pid)

    def _attach_program(self, pid: int) -> None:
        try:
            self.probe_offset, self.stack_check_found = probe_site(self.binary)
        except ProbeSiteMissing as missing:
            self.finding = str(missing)  # a launched program that is not Go: nothing to see
            return
        try:
            # pid-filtered: the breakpoint is put into this process only (and kept across the
            # gate shell's exec into the program, which is the same process).
            self.loaded.attach_uprobe(PROBE_FUNCTION, self.binary, SYMBOL, self.probe_offset, pid)
        except Exception as error:
            raise ObserverError(f"the uprobe on {SYMBOL} in {self.binary} did not attach: {error}") from None

    def not_applicable(self, expected: int) -> str | None:
        if self.finding:
            return self.finding
        if self.kernel_matched == 0 and expected:
            return f"0 of {expected} writes to the watched descriptor passed through Go's {SYMBOL}"
        return None

