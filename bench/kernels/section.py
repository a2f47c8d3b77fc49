"""The document's "Kernel dependence" section, from a stored matrix (results/kernels.json)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from bench.kernels.matrix import judge_kernel_claims, measured, short_name

# The repository, for git: found from this file, so that the reading side, which imports this
# module for the report, imports nothing of the measuring side (bench/run/, methods/).
ROOT = Path(__file__).resolve().parents[2]

# What the matrix measured: a change here since its commit makes it stale.
MEASURED_CODE = ("methods", "preload", "bpf", "gotargets", "bench/kernels")
DETAIL_CHARS = 90
FEATURE_NAMES = {
    "btf": "BTF (/sys/kernel/btf/vmlinux)", "ring_buffer": "BPF ring buffer map", "raw_tracepoint": "raw tracepoint",
    "tracepoint": "tracepoint (perf_event_open)", "uprobe": "uprobe (perf_event_open)",
    "ptrace_get_syscall_info": "PTRACE_GET_SYSCALL_INFO", "seccomp_user_notification": "seccomp user notification",
    "sync_wake_up": "notification SYNC_WAKE_UP", "wait_killable_recv": "filter flag WAIT_KILLABLE_RECV",
    "listener_hangup_at_exit": "listener hangs up at exit (not at reaping)",
    "syscall_user_dispatch": "Syscall User Dispatch", "mmap_at_zero": "mmap at address 0",
    "cap_bpf_perfmon": "CAP_BPF and CAP_PERFMON known", "kernel_headers": "kernel headers (a package, for bcc)",
}


def code_changed_since(matrix: dict) -> list[str] | None:
    """Files of the measured code that differ between the matrix's commit and the work tree;
    None when git cannot tell (no git, or that commit is not in this clone)."""
    try:
        result = subprocess.run(["git", "diff", "--name-only", matrix["commit"], "--", *MEASURED_CODE], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.split() if result.returncode == 0 else None


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return "not run"
    if cell["outcome"] == "exact":
        return "exact"
    detail = cell["detail"].replace("|", "\\|")
    detail = detail if len(detail) <= DETAIL_CHARS else detail[:DETAIL_CHARS - 1] + "…"
    return f"{cell['outcome']}: {detail}"


def _header(column: dict) -> str:
    where = "native" if column["accel"] == "native" else ("KVM" if column["accel"] == "kvm" else "emulated")
    series = f", {column['series']}" if column.get("series") else ""
    return f"{short_name(column)} ({where}{series})"


def matrix_table(matrix: dict) -> list[str]:
    columns = matrix["kernels"]
    lines = ["| technique | " + " | ".join(_header(c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for technique in matrix["techniques"]:
        cells = []
        for column in columns:
            found = next((cell for cell in column["cells"] if cell["technique"] == technique), None)
            cells.append("not measured" if column["error"] else _cell_text(found))
        lines.append(f"| `{technique}` | " + " | ".join(cells) + " |")
    return lines


def features_table(matrix: dict) -> list[str]:
    columns = measured(matrix)
    names = [name for name in FEATURE_NAMES if any(name in c["features"] for c in columns)]
    lines = ["| probed feature | " + " | ".join(short_name(c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name in names:
        marks = ["yes" if c["features"].get(name, {}).get("present") else "**no**" for c in columns]
        lines.append(f"| {FEATURE_NAMES[name]} | " + " | ".join(marks) + " |")
    return lines


def what_each_needed(matrix: dict) -> list[str]:
    lines = []
    for column in matrix["kernels"]:
        source = column["package"] and f"`{column['package']}` {column['package_version']}" or column["name"]
        if column["error"]:
            lines.append(f"- {short_name(column)}: {source}; did not run: {column['error']}")
            continue
        headers = column["headers"] or "none"
        lines.append(f"- {short_name(column)}: {source}; headers for bcc: {headers}; BTF: "
                     f"{'yes' if column['features'].get('btf', {}).get('present') else 'no'}")
    return lines


def kernel_section(matrix: dict, changed_since: list[str] | None = None) -> list[str]:
    """Markdown lines of the "Kernel dependence" section. changed_since: the measured code's
    files changed since the matrix's commit (code_changed_since()), said if any."""
    emulated = [short_name(c) for c in matrix["kernels"] if c["emulated"]]
    lines = ["## Kernel dependence", "",
             f"Every technique's capture of {matrix['moves']} moves of the opponent, verified, on each kernel "
             f"(`tapbench kernels`, commit {matrix['commit'][:12]}"
             f"{', with uncommitted changes' if matrix['dirty'] else ''}, "
             f"{matrix['date'][:10]}). A cell is exact, n/a (a feature the technique needs was probed and found "
             f"missing) or failed (with its error); each had {matrix['cell_timeout_s']:g} s."
             + (f" {', '.join(emulated)} ran under QEMU's software emulation: no timing from them is published."
                if emulated else ""), ""]
    if changed_since:
        lines += [f"**The measured code changed since:** {', '.join(changed_since[:8])}"
                  f"{' …' if len(changed_since) > 8 else ''}; run `sudo make kernels` again.", ""]
    lines += matrix_table(matrix) + [""] + what_each_needed(matrix) + ["", "What each kernel offered, probed "
                                                                       "(a system call tried, not a version read):",
                                                                       ""]
    lines += features_table(matrix) + ["", "The article's claims of kernel dependence, judged from this matrix:", ""]
    for claim, judged in judge_kernel_claims(matrix).items():
        lines.append(f"- \"{claim}\": **{judged['verdict']}**: {judged['reason']}")
    return lines
