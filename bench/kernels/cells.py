"""One kernel's column of the matrix, measured where it runs: inside a guest of
`tapbench kernels`, or natively for the running kernel.

    python -m bench.kernels.cells --out FILE [--techniques LABEL,...] [--moves N] [--cell-timeout S]

The features first (bench/kernels/features.py), then each technique's verified capture in a
process of its own, `tapbench run ... --json`, killed with its process group if it outlives its
time limit. A cell is exact, n/a (a feature it needs was probed and found missing: named), or
failed (the error's last line, or what the capture got wrong). Progress goes to stderr, one
line a cell, prefixed with PROGRESS so the host can pass it on; no timing goes into FILE.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import select
import signal
import sys
import tempfile
import time

from bench.kernels import features
from bench.kernels.matrix import PROGRESS
from bench.kernels.techniques import DEFAULT_CELL_TIMEOUT_S, DEFAULT_MOVES, HEADERS, Technique, choose

# The CO-RE cell runs where bcc's headers are out of reach (covered by empty folders, in a
# mount namespace of its own) and bcc itself cannot be imported: what it captures, it captures
# with the kernel's BTF and the object built on the host, nothing else.
HIDDEN_HEADERS = ("/lib/modules", "/usr/src")
CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x00020000, 0x4000, 1 << 18


def cli_argv(technique: Technique, moves: int, out: str) -> list[str]:
    """`tapbench run`'s arguments for one cell."""
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in technique.options.items()]
    return ["run", "--method", technique.method, *flags, "--target", technique.target(), "--moves", str(moves),
            "--repeats", "1", "--placement", "shared", "--json", out]


def hide_headers() -> None:
    """In a mount namespace of this process's own: the kernel headers' folders covered by empty
    ones, and bcc made unimportable (so neither it nor its clang can be what works)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), f"a mount namespace of its own: {os.strerror(ctypes.get_errno())}")
    for folder in HIDDEN_HEADERS:
        if os.path.isdir(folder) and libc.mount(b"tmpfs", folder.encode(), b"tmpfs", 0, None) != 0:
            raise OSError(ctypes.get_errno(), f"covering {folder}: {os.strerror(ctypes.get_errno())}")
    sys.modules["bcc"] = None


def _cell_child(argv: list[str], without_headers: bool, stderr_fd: int) -> None:
    """In the forked child: `tapbench run` as its own process group, stderr to the pipe. Never
    returns."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr_fd, 2)
        # whatever sys.stdout and sys.stderr were in the parent (a test's capture), here they are 1 and 2
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", buffering=1, closefd=False)
        if without_headers:
            hide_headers()
        from bench.cli import main
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException as error:  # noqa: BLE001  (the child must end here, saying why)
        print(f"ERROR: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        sys.stderr.flush()
        os._exit(code)


def run_forked(argv: list[str], without_headers: bool, timeout_s: float) -> tuple[int | None, str]:
    """`tapbench run argv` in a child forked from this process, which has imported tapbench
    already (an import costs ~20 s under emulation, each cell would pay it): (its exit status,
    or None if it outlived timeout_s and was killed with its process group; its stderr)."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _cell_child(argv, without_headers, write_end)
    os.close(write_end)
    exited = os.pidfd_open(pid)
    try:
        chunks, killed = _collect(read_end, exited, time.monotonic() + timeout_s)
        if killed:
            os.killpg(pid, signal.SIGKILL)  # the run, its target and its helpers
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(exited)
        os.close(read_end)
    return (None if killed else os.waitstatus_to_exitcode(status)), b"".join(chunks).decode(errors="replace")


def _collect(read_end: int, exited: int, deadline: float) -> tuple[list[bytes], bool]:
    """What the child writes to the pipe until it exits (then what is left, without waiting
    for a descendant that still holds the pipe) or the deadline passes (killed: True)."""
    chunks, watched = [], [read_end, exited]
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return chunks, True
        ready, _, _ = select.select(watched, [], [], remaining)
        if read_end in ready:
            chunk = os.read(read_end, 65536)
            chunks.append(chunk)
            if not chunk:
                watched = [exited]  # every writer closed it; only the exit is left to wait for
        if exited in ready:
            os.set_blocking(read_end, False)
            try:
                while chunk := os.read(read_end, 65536):
                    chunks.append(chunk)
            except BlockingIOError:
                pass
            return chunks, False


def classify(returncode: int | None, row: dict | None, error: str, missing: dict[str, str],
             timeout_s: float) -> tuple[str, str]:
    """(outcome, detail) of one cell: exact; n/a naming a needed feature found missing; or
    failed, with what went wrong. A cell that ran out of time failed, whatever is missing:
    a hang is a defect of its own."""
    if returncode is None:
        return "failed", f"no result within {timeout_s:g} s: killed"
    if row is not None and row.get("exact"):
        return "exact", f"{row['captured']}/{row['expected']} exact"
    if row is not None:
        what = (f"captured {row['captured']}/{row['expected']}, {row['lost']} lost, {row['phantom']} phantom"
                f"{'' if row['in_order'] else ', out of order'}")
    else:
        what = error or f"exit status {returncode}, no results"
    if missing:
        feature, probed = next(iter(missing.items()))
        return "n/a", f"no {feature.replace('_', ' ')} ({probed}); it said: {what}"
    return "failed", what


def run_cell(technique: Technique, found: dict, moves: int, timeout_s: float) -> dict:
    """One technique's capture on this kernel, as a cell of the matrix."""
    missing = {name: found[name]["detail"] for name in technique.needs if not found[name]["present"]}
    with tempfile.TemporaryDirectory(prefix="tapbench-cell-") as scratch:
        out = os.path.join(scratch, "run.json")
        returncode, stderr = run_forked(cli_argv(technique, moves, out), technique.without_headers, timeout_s)
        row = None
        if os.path.exists(out):
            with open(out) as stream:
                row = json.load(stream)["runs"][0]
    error = (stderr.strip().splitlines() or [""])[-1].removeprefix("ERROR: ")
    outcome, detail = classify(returncode, row, error, missing, timeout_s)
    return {"technique": technique.label, "method": technique.method, "options": dict(technique.options),
            "target": technique.target(), "outcome": outcome, "detail": detail, "needs": list(technique.needs),
            "missing": sorted(missing), "headers_hidden": technique.without_headers}


def progress(line: str) -> None:
    """One line on stderr, marked for the host that reads the guest's console."""
    print(f"{PROGRESS} {line}", file=sys.stderr, flush=True)


def measure(techniques: list[Technique], moves: int, timeout_s: float, report=progress) -> dict:
    """This kernel's column: its version, its features, a cell per technique."""
    import bench.cli  # noqa: F401  (once, here: every cell is forked with it imported)

    found = features.probe_all() | {HEADERS: features.kernel_headers()}
    report(f"features probed; missing: {', '.join(name for name, f in found.items() if not f['present']) or 'none'}")
    cells = []
    for technique in techniques:
        started = time.monotonic()
        cells.append(run_cell(technique, found, moves, timeout_s))
        report(f"{technique.label}: {cells[-1]['outcome']}: {cells[-1]['detail']} ({time.monotonic() - started:.0f} s)")
    return {"release": platform.release(), "features": found, "cells": cells}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--techniques", help="comma-separated labels or method names (default: all)")
    parser.add_argument("--moves", type=int, default=DEFAULT_MOVES)
    parser.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT_S)
    args = parser.parse_args(argv)
    techniques = choose(args.techniques.split(",") if args.techniques else None)
    column = measure(techniques, args.moves, args.cell_timeout)
    with open(args.out + ".part", "w") as stream:
        json.dump(column, stream, indent=1)
    os.replace(args.out + ".part", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
