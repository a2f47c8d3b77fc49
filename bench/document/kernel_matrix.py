"""The kernel matrix in the report: results/kernels.json (written by `tapbench kernels`,
bench/kernels/) as the Kernel dependence section's matrix, and its verdicts in the form
headline_json takes ({"kernels": [...], "verdicts": {technique: {"verdict", "why"}}}).

bench/kernels is imported only when a matrix is stored: bench/kernels/section.py takes the
repository's root from bench.run.targets, which imports methods/, and the reading side loads
nothing that measures unless it must (tests/test_report.py checks the imports).
"""
from __future__ import annotations

from pathlib import Path

from bench.document.verdicts import FAILS, HOLDS, UNDETERMINED

KERNELS_FILE = "kernels.json"
MACHINES_FOLDER = "machines"  # results/machines/<id>/latest.json: the results folder is two up


def stored_matrix(json_path: Path) -> Path | None:
    """results/kernels.json of the results folder a stored sweep is in, if `tapbench kernels`
    wrote one."""
    machines = Path(json_path).resolve().parent.parent
    path = machines.parent / KERNELS_FILE
    return path if machines.name == MACHINES_FOLDER and path.exists() else None


def read(path: Path) -> dict:
    from bench.kernels.matrix import load

    return load(path)


def section_lines(matrix: dict) -> list[str]:
    """The matrix's part of the Kernel dependence section, as bench/kernels writes it."""
    from bench.kernels.section import code_changed_since, kernel_section

    return kernel_section(matrix, code_changed_since(matrix))


def combined(verdicts: list[str]) -> str:
    """A technique's claims about kernels as one verdict: refuted if one is, held if all are."""
    if FAILS in verdicts:
        return FAILS
    return HOLDS if verdicts and all(v == HOLDS for v in verdicts) else UNDETERMINED


def verdicts(matrix: dict) -> dict:
    """{"kernels": the kernels measured, "verdicts": {technique: {"verdict", "why"}}}: each of
    the matrix's judged claims goes to the technique its row is of ('ebpf --loader core': ebpf)."""
    from bench.kernels.matrix import CLAIMS, judge_kernel_claims, measured, short_name

    by_technique: dict[str, list[tuple[str, dict]]] = {}
    for claim, judged in judge_kernel_claims(matrix).items():
        by_technique.setdefault(CLAIMS[claim].split()[0], []).append((claim, judged))
    return {"kernels": [short_name(column) for column in measured(matrix)],
            "verdicts": {technique: {"verdict": combined([j["verdict"] for _, j in judged]),
                                     "why": why(technique, judged)} for technique, judged in by_technique.items()}}


def why(technique: str, judged: list[tuple[str, dict]]) -> str:
    """The reason of each claim, named where a technique has more than one ('ebpf: weak
    (CO-RE)' and 'Linux 5.15+' are both eBPF's)."""
    if len(judged) == 1:
        return judged[0][1]["reason"]
    return "; ".join(f"'{claim.removeprefix(technique + ': ')}': {j['reason']}" for claim, j in judged)
