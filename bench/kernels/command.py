"""`tapbench kernels`: every technique on several kernels, booted with virtme-ng, and natively
on the running one; the matrix goes to results/kernels.json."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from bench.kernels import techniques as rows
from bench.kernels.matrix import PROGRESS
from bench.kernels.catalog import ALIASES, DEFAULT_CACHE, DEFAULT_KERNELS, Kernel, KernelNotFound, find_kernel, say
from bench.kernels.matrix import KERNELS_FORMAT, Cell, Column, Matrix, MatrixError
from bench.kernels.section import MEASURED_CODE, judge_kernel_claims, matrix_table
from bench.kernels.vm import BOOT_ALLOWANCE_S, GUEST_OUT, guest_command, kvm_works, measure_in_guest, missing_tools
from bench.run.targets import ROOT

DEFAULT_JSON = ROOT / "results" / "kernels.json"
ACCELS = ("auto", "kvm", "tcg")
EXAMPLES = f"""examples:
  sudo tapbench kernels             # {', '.join(DEFAULT_KERNELS)} and the running kernel, every technique
  sudo tapbench kernels --kernel 5.10 --method ebpf,ptrace,preload --no-native
  sudo tapbench kernels --kernel linux-image-6.1.0-57-rt-amd64-unsigned   # any Debian kernel image package
  sudo tapbench kernels --kernel /boot/vmlinuz-6.1.0-57-amd64             # a vmlinuz beside its modules
  sudo tapbench kernels --accel tcg --jobs 2 --json /tmp/kernels.json

NAME: an alias ({', '.join(f'{a}: {s.series}' for a, s in ALIASES.items())}; the newest package of that series),
a Debian 11-13 kernel image package, or a path to a vmlinuz. Downloads and unpacked kernels are kept in
{DEFAULT_CACHE} and reused; the machine's own packages, /lib/modules and settings are not touched."""


class KernelsError(Exception):
    pass


HELP = "every technique on other kernels (booted with virtme-ng) and on this one: results/kernels.json"


def add_parser(commands) -> None:
    """`tapbench kernels`, as a subcommand of tapbench's parser."""
    add_arguments(commands.add_parser("kernels", help=HELP, epilog=EXAMPLES,
                                      formatter_class=argparse.RawDescriptionHelpFormatter))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernel", action="append", metavar="NAME",
                        help=f"a kernel to boot, again for more (default: {', '.join(DEFAULT_KERNELS)})")
    parser.add_argument("--method", help="techniques, comma-separated: labels or method names (default: all: "
                                         f"{', '.join(rows.BY_LABEL)})")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where the matrix goes (default results/kernels.json)")
    parser.add_argument("--no-native", action="store_true", help="leave out the running kernel's column")
    parser.add_argument("--moves", default=str(rows.DEFAULT_MOVES), help="moves per capture (default %(default)s)")
    parser.add_argument("--cell-timeout", default=str(rows.DEFAULT_CELL_TIMEOUT_S),
                        help="seconds each cell may take before it is killed (default %(default)s)")
    parser.add_argument("--accel", choices=ACCELS, default="auto",
                        help="kvm, tcg (QEMU's software emulation), or auto: KVM if a guest boots under it here")
    parser.add_argument("--jobs", default="1", help="kernels booted at once, each on one virtual CPU (default 1)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help=f"downloads and kernels (default {DEFAULT_CACHE})")


def number(text: str, name: str, low: float, high: float, kind=int):
    try:
        value = kind(text)
    except ValueError:
        raise KernelsError(f"{name} must be a number, got {text!r}") from None
    if not low <= value <= high:
        raise KernelsError(f"{name} must be between {low:,} and {high:,}, got {text}")
    return value


def command(args) -> int:
    try:
        return _kernels(args)
    except (KernelsError, KernelNotFound, MatrixError) as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2


def _kernels(args) -> int:
    if os.geteuid() != 0:
        raise KernelsError("tapbench kernels needs root (BPF, ptrace, vm.mmap_min_addr, apt-get): use sudo")
    try:
        techniques = rows.choose(args.method.split(",") if args.method else None)
    except ValueError as error:
        raise KernelsError(str(error)) from None
    moves = number(args.moves, "--moves", 1, 1_000_000)
    cell_timeout = number(args.cell_timeout, "--cell-timeout", 10, 3600, float)
    jobs = number(args.jobs, "--jobs", 1, os.cpu_count() or 1)
    names = args.kernel or list(DEFAULT_KERNELS)
    reason = missing_tools()
    if reason:
        raise KernelsError(reason)
    cache = Path(args.cache)
    kernels = [find_kernel(name, cache) for name in names]  # every download first: a bad NAME fails now
    kvm = choose_accel(args.accel, kernels[0], cache)
    inner = [sys.executable, "-m", "bench.kernels.cells", "--out", f"{GUEST_OUT}/column.json",
             "--techniques", ",".join(t.label for t in techniques), "--moves", str(moves),
             "--cell-timeout", str(cell_timeout)]
    timeout_s = BOOT_ALLOWANCE_S + len(techniques) * (cell_timeout + 10)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        columns = list(pool.map(lambda k: guest_column(k, kvm, guest_command(inner), timeout_s, cache), kernels))
    if not args.no_native:
        columns.append(native_column(inner))
    matrix = Matrix(commit=git("rev-parse", "HEAD") or "unknown", dirty=bool(git("status", "--porcelain", "--",
                                                                                   *MEASURED_CODE)),
                    date=datetime.now(timezone.utc).isoformat(timespec="seconds"), moves=moves,
                    cell_timeout_s=cell_timeout, techniques=[t.label for t in techniques], kernels=columns)
    return report(matrix, Path(args.json))


def choose_accel(accel: str, first: Kernel, cache: Path) -> bool:
    """Whether guests run under KVM: asked for, or (auto) tried once here."""
    if accel != "auto":
        return accel == "kvm"
    works, why = kvm_works(first, cache)
    say(f"KVM: {why}; " + ("guests run under KVM" if works else "guests run under QEMU's software emulation"))
    return works


def guest_column(kernel: Kernel, kvm: bool, command_line: str, timeout_s: float, cache: Path) -> Column:
    found = measure_in_guest(kernel, kvm, command_line, timeout_s, cache)
    column = Column(name=kernel.name, package=kernel.package, package_version=kernel.version, series=kernel.series,
                    release=None, headers=kernel.headers, accel="kvm" if kvm else "tcg", emulated=not kvm,
                    error=found.error)
    return column_of(found.column, column) if found.column else column


def native_column(inner: list[str]) -> Column:
    """The running kernel's column, measured here by the program the guests run."""
    say(f"{os.uname().release}: measuring natively")
    column = Column(name="running", package=None, package_version=None, series=None, release=None, headers=None,
                    accel="native", emulated=False)
    with tempfile.TemporaryDirectory(prefix="tapbench-kernels-") as scratch:
        out = Path(scratch) / "column.json"
        argv = [out.as_posix() if arg == f"{GUEST_OUT}/column.json" else arg for arg in inner]
        result = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        for line in result.stderr.splitlines():
            if line.startswith(PROGRESS):
                say(f"native: {line.removeprefix(PROGRESS).strip()}")
        if not out.exists():
            column.error = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return column
        return column_of(json.loads(out.read_text()), column)


def column_of(measured: dict, column: Column) -> Column:
    column.release = measured["release"]
    column.features = measured["features"]
    column.cells = [Cell(**cell) for cell in measured["cells"]]
    if column.accel == "native":
        column.headers = measured["features"][rows.HEADERS]["detail"] if \
            measured["features"][rows.HEADERS]["present"] else None
    return column


def git(*arguments: str) -> str:
    result = subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def report(matrix: Matrix, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    matrix.write(path)
    data = matrix.to_dict()
    print("\n".join(matrix_table(data)))
    for claim, judged in judge_kernel_claims(data).items():
        print(f"{claim}: {judged['verdict']}: {judged['reason']}")
    print(f"matrix written to {path} (format {KERNELS_FORMAT})")
    hung = [f"{c.release or c.name}: {cell.technique}" for c in matrix.kernels for cell in c.cells
            if cell.outcome == "failed" and cell.detail.startswith("no result within")]
    if hung:
        print(f"ERROR: {len(hung)} cell(s) ran out of time (a hang is a defect): {'; '.join(hung)}", file=sys.stderr)
        return 1
    return 0
