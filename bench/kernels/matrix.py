"""results/kernels.json: the techniques × kernels matrix, its verdicts on the article's claims
of kernel dependence, and the document's "Kernel dependence" section, from the file alone.

The file, as written by `tapbench kernels`:
  format, commit, dirty, date, moves, cell_timeout_s, techniques (the rows' labels, in order),
  kernels: one column each, in the matrix's order (the running kernel last):
    name (as asked for), package, package_version, series, release (its `uname -r`, read in
    the guest), headers (the packages bcc compiled against, or null), accel (kvm | tcg |
    native), emulated, error (why it has no cells, or null), features (probe -> present,
    detail), cells: technique, method, options, target, outcome (exact | n/a | failed),
    detail, needs, missing, headers_hidden.
No timing is kept: under emulation none means anything.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

# History of KERNELS_FORMAT:
#   1  the first: columns with probed features and cells, no timings.
KERNELS_FORMAT = 1
OUTCOMES = ("exact", "n/a", "failed")
# What a guest's cells prefix each progress line with on stderr, so the host can pass it on.
PROGRESS = "tapbench-kernels:"
CORE, PTRACE, PRELOAD = "ebpf --loader core", "ptrace", "preload"
FLOOR = (5, 15)  # the article's "Linux 5.15+"
MIN_KERNELS = 3  # fewer columns than this judge nothing
CLAIMS = {"ebpf: weak (CO-RE)": CORE, "ptrace: strong (ABI-sensitive)": PTRACE, "preload: medium": PRELOAD,
          "Linux 5.15+": CORE}


class MatrixError(Exception):
    pass


@dataclass
class Cell:
    technique: str
    method: str
    options: dict
    target: str
    outcome: str  # one of OUTCOMES
    detail: str
    needs: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    headers_hidden: bool = False


@dataclass
class Column:
    name: str
    package: str | None
    package_version: str | None
    series: str | None
    release: str | None
    headers: str | None
    accel: str  # "kvm", "tcg" (QEMU's software emulation) or "native"
    emulated: bool
    error: str | None = None
    features: dict = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Matrix:
    commit: str
    dirty: bool
    date: str
    moves: int
    cell_timeout_s: float
    techniques: list[str]
    kernels: list[Column]
    format: int = KERNELS_FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Matrix":
        if data.get("format") != KERNELS_FORMAT:
            raise MatrixError(f"a kernels file of format {data.get('format')}; this tapbench reads {KERNELS_FORMAT}")
        columns = [Column(**{**c, "cells": [Cell(**cell) for cell in c["cells"]]}) for c in data["kernels"]]
        return cls(**{**data, "kernels": columns})

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def load(path: Path) -> dict:
    """A stored matrix, checked by reading it into the types; returned as the dict it is."""
    data = json.loads(Path(path).read_text())
    Matrix.from_dict(data)
    return data


def release_tuple(release: str | None) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def measured(matrix: dict) -> list[dict]:
    """The columns that have cells (a kernel that did not boot measured nothing)."""
    return [column for column in matrix["kernels"] if column["cells"] and not column["error"]]


def short_name(column: dict) -> str:
    return column["release"] or column["name"]


def cell_of(column: dict, technique: str) -> dict | None:
    return next((cell for cell in column["cells"] if cell["technique"] == technique), None)


def _outcomes(matrix: dict, technique: str) -> list[tuple[dict, dict | None]]:
    return [(column, cell_of(column, technique)) for column in measured(matrix)]


def _broke(pairs: list[tuple[dict, dict | None]]) -> list[str]:
    return [f"{short_name(column)} ({cell['outcome'] if cell else 'not run'})"
            for column, cell in pairs if not cell or cell["outcome"] != "exact"]


def _judge_dependence(matrix: dict, claim: str) -> tuple[str, str]:
    technique = CLAIMS[claim]
    pairs = _outcomes(matrix, technique)
    names = ", ".join(short_name(column) for column, _ in pairs)
    broke = _broke(pairs)
    if claim.startswith("ebpf"):
        if broke:
            return "does not hold", f"the one CO-RE object did not capture exactly on {', '.join(broke)}"
        with_headers = [short_name(column) for column, cell in pairs if not cell.get("headers_hidden")]
        if with_headers:
            return "undetermined", f"exact everywhere, but with kernel headers in reach on {', '.join(with_headers)}"
        return "holds", f"the one CO-RE object, no kernel headers, captured exactly on all {len(pairs)} kernels ({names})"
    if claim.startswith("ptrace"):
        if broke:
            return "holds", f"{technique} broke on {', '.join(broke)} of {len(pairs)} kernels"
        return "does not hold", f"{technique} captured exactly, unchanged, on all {len(pairs)} kernels ({names})"
    if not broke:
        return "does not hold", (f"{technique} captured exactly on all {len(pairs)} kernels ({names}): "
                                 "no kernel dependence seen")
    if len(broke) == len(pairs):
        return "does not hold", f"{technique} broke on every kernel ({', '.join(broke)}): stronger than medium"
    return "holds", f"{technique} broke on {', '.join(broke)}, not on the others"


def _judge_floor(matrix: dict) -> tuple[str, str]:
    pairs = [(column, cell) for column, cell in _outcomes(matrix, CORE) if release_tuple(column["release"])]
    below = [(c, cell) for c, cell in pairs if release_tuple(c["release"]) < FLOOR]
    above = [(c, cell) for c, cell in pairs if release_tuple(c["release"]) >= FLOOR]
    if not below or not above:
        side = "below" if not below else "at or above"
        return "undetermined", f"no kernel {side} 5.15 was measured: the bound needs kernels on both sides"
    broke_above, broke_below = _broke(above), _broke(below)
    if broke_above:
        return "does not hold", f"eBPF (CO-RE) did not capture exactly on {', '.join(broke_above)}, at or above 5.15"
    names = ", ".join(short_name(c) for c, _ in above)
    if broke_below:
        return "holds", f"exact on every kernel from 5.15 ({names}), not on {', '.join(broke_below)}"
    lower = ", ".join(short_name(c) for c, _ in below)
    return "holds", (f"exact on every kernel from 5.15 ({names}), and below it too ({lower}): "
                     "5.15 is a safe floor, not the real one")


def judge_kernel_claims(matrix: dict) -> dict:
    """For each of the article's kernel-dependence claims: {"verdict": holds | does not hold |
    undetermined, "reason": one line}, judged from the matrix (a dict of results/kernels.json)."""
    kernels = measured(matrix)
    verdicts = {}
    for claim in CLAIMS:
        if len(kernels) < MIN_KERNELS:
            verdict, reason = "undetermined", (f"{len(kernels)} kernel(s) measured; a verdict needs at least "
                                               f"{MIN_KERNELS}")
        elif claim == "Linux 5.15+":
            verdict, reason = _judge_floor(matrix)
        else:
            verdict, reason = _judge_dependence(matrix, claim)
        verdicts[claim] = {"verdict": verdict, "reason": reason}
    return verdicts
