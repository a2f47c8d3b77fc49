"""The rows of the kernel matrix: each technique with the options it runs with, the target it
runs on, and the kernel features (bench/kernels/features.py) it cannot work without. The host
reads them to plan a matrix; the guest's cells (bench/kernels/cells.py) to run it."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MOVES = 300
DEFAULT_CELL_TIMEOUT_S = 240
HEADERS = "kernel_headers"  # not a kernel feature: the package bcc compiles against


@dataclass(frozen=True)
class Technique:
    """A row of the matrix: a method with its options, on the first target it sees, and the
    probed features (bench/kernels/features.py) it cannot work without."""
    label: str
    method: str
    options: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    without_headers: bool = False

    def target(self) -> str:
        from methods import REGISTRY
        return REGISTRY[self.method].targets[0]


# The matrix's rows, in the document's order: the article's three techniques first.
TECHNIQUES = (
    Technique("ebpf --loader core", "ebpf", {"loader": "core"}, ("btf", "ring_buffer", "raw_tracepoint"),
              without_headers=True),
    Technique("ebpf (bcc)", "ebpf", {"loader": "bcc"}, (HEADERS, "ring_buffer", "raw_tracepoint")),
    Technique("ptrace", "ptrace", {}, ("ptrace_get_syscall_info",)),
    Technique("preload", "preload"),
    Technique("uprobe (bcc)", "uprobe", {}, (HEADERS, "ring_buffer", "uprobe")),
    Technique("bpftrace", "bpftrace", {}, ("tracepoint",)),
    Technique("strace", "strace"),
    Technique("unotify", "unotify", {}, ("seccomp_user_notification",)),
    Technique("zpoline", "zpoline", {}, ("mmap_at_zero",)),
    Technique("sud", "sud", {}, ("syscall_user_dispatch",)),
)
BY_LABEL = {technique.label: technique for technique in TECHNIQUES}


def choose(labels: list[str] | None) -> list[Technique]:
    """The techniques named (labels or method names: 'ebpf' names both loaders), in the
    matrix's order; all of them by default. A ValueError names what is unknown."""
    if not labels:
        return list(TECHNIQUES)
    unknown = [label for label in labels if label not in BY_LABEL and all(t.method != label for t in TECHNIQUES)]
    if unknown:
        raise ValueError(f"unknown technique {', '.join(unknown)}; choose from {', '.join(BY_LABEL)} "
                         "(or a method name: ebpf names both loaders)")
    return [t for t in TECHNIQUES if t.label in labels or t.method in labels]
