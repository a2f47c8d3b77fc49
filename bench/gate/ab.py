"""The gate's same-run A/B: the code of a reference commit (A) and this code (B) measured on
this machine, in one run, interleaved, so that no figure from another machine, kernel build or
day decides speed (asv's `continuous` works this way).

What comes from the reference: `methods/`, `preload/` and `bpf/`, the backends and their C,
checked out into a temporary worktree (its hook built there). Both sides are measured by this
commit's harness (`bench/`) and this commit's opponent, each in a worker process of its own
(bench/gate/worker.py): so a regression in a backend, its hook, its BPF program or its ring
consumer shows as B against A; one in the harness's own loop would move both sides alike, and
is the hot-path benchmarks' to catch (`make gate` runs them first).

Each repeat runs, in a rotating order, the opponent bare, under A and under B, in the same
placement; A and B are each paired with that repeat's bare run. Per technique and placement
two figures are compared, repeat by repeat: the target's slowdown (what it feels) and the CPU
cost per event counted whole (what the machine pays: the consumer's CPU is in it). A row fails
when B is worse by more than the threshold and a one-sided Wilcoxon signed-rank test of the
paired differences says so after Holm's correction over every comparison of the run; a failure
must show again in a confirming round before the gate fails on it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.run.placement import split_applicable
from bench.stats import holm_adjusted
from bench.run.targets import BIN_DIR, ROOT, Workload
from bench.plan import gate_rows
from methods import REGISTRY
from methods.protocol import OBSERVER_CONTRACT

# The techniques gated, each in its default variant on the target it sees, flat out: every
# technique of ours, as each declares its gate's moves (bench/plan.py).
ROWS = gate_rows()
# The hooks a reference builds, each from its C where the reference has it (one without zpoline's
# or sud's has no such technique, and the gate says so when it asks the reference for it).
REFERENCE_LIBRARIES = {"preload/libtapbench_hook.so": "preload/hook.c",
                       "preload/libtapbench_zpoline.so": "preload/zpoline.c",
                       "preload/libtapbench_sud.so": "preload/sud.c"}
PLACEMENTS = ("shared", "split")
REPEATS, CONFIRM_REPEATS = 30, 30
MIN_PAIRS = 6  # fewer valid pairs cannot reach significance after the correction: fails closed
THRESHOLD, ALPHA = 0.10, 0.05
WORKER_TIMEOUT_S = 300


class GateError(Exception):
    """The gate cannot judge (no reference in this clone, an incompatible one ...): it fails
    closed with this reason."""


# --- the reference tree --------------------------------------------------------------------

def default_reference(results: Path) -> str:
    """The commit whose full sweep the published results come from: the newest stored
    latest.json's (a converted file's original commit is what it measured)."""
    from bench.document.rows import Document

    sweeps = []
    for path in (results / "machines").glob("*/latest.json"):
        meta = Document.load(path).metadata
        if meta.get("commit"):
            sweeps.append((meta.get("date", ""), meta["commit"].removesuffix("-dirty")))
    if not sweeps:
        raise GateError(f"no stored sweep under {results / 'machines'} names a commit: pass --against REF")
    return max(sweeps)[1]


def _git(*argv: str) -> str:
    result = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise GateError(f"git {' '.join(argv)}: {result.stderr.strip() or 'failed'}")
    return result.stdout.strip()


class ReferenceTree:
    """A temporary worktree of REF with this commit's harness and opponent in it, its own
    backends, hook and BPF C; removed on every exit path."""

    def __init__(self, ref: str):
        try:
            self.commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
        except GateError:
            shallow = _git("rev-parse", "--is-shallow-repository") == "true"
            raise GateError(f"{ref} is not in this clone's history" + (
                " (a shallow clone: fetch the history, e.g. `git fetch --unshallow`)" if shallow else "")) from None
        self.root = Path(tempfile.mkdtemp(prefix="tapbench-reference-"))

    def __enter__(self) -> "ReferenceTree":
        try:
            _git("worktree", "add", "--detach", "--force", str(self.root / "tree"), self.commit)
            tree = self.root / "tree"
            # This commit's harness (and its worker) and opponent; the reference's backends.
            shutil.rmtree(tree / "bench")
            shutil.copytree(ROOT / "bench", tree / "bench", ignore=shutil.ignore_patterns("__pycache__"))
            # The observation protocol this harness reads (methods/protocol.py, options.py, spec.py and the
            # plumbing in methods/_kernel/) where the reference predates it: its backends keep
            # their own modules; the harness gets the names it imports from its own tree, not
            # from whatever the interpreter would find first elsewhere.
            for shared in ("protocol.py", "options.py", "spec.py", "_kernel"):
                if not (tree / "methods" / shared).exists():
                    copy = shutil.copytree if (ROOT / "methods" / shared).is_dir() else shutil.copy2
                    copy(ROOT / "methods" / shared, tree / "methods" / shared)
            (tree / "gotargets" / "bin").mkdir(parents=True, exist_ok=True)
            for binary in BIN_DIR.iterdir():
                shutil.copy2(binary, tree / "gotargets" / "bin" / binary.name)
            libraries = [library for library, source in REFERENCE_LIBRARIES.items() if (tree / source).exists()]
            build = subprocess.run(["make", "-s", "-C", str(tree), *libraries], capture_output=True, text=True)
            if build.returncode != 0:
                raise GateError(f"the reference's hooks did not build: {build.stderr.strip()[-300:]}")
        except BaseException:
            self.close()
            raise
        return self

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    def close(self) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.tree)],
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)

    def __exit__(self, *exc) -> None:
        self.close()


# What of this code a worker runs: its backends, harness, hooks, BPF objects and opponent builds.
CANDIDATE_PARTS = ("methods", "bench", "preload", "bpf", "gotargets")


class CandidateTree:
    """This code as it is (uncommitted edits, built hooks, BPF objects and opponents included),
    copied into a temporary tree made like the reference's. Where a tree lies is no part of the
    code, yet it measured as one: run from the checkout, code identical to the reference's was
    12-14 % dearer under unotify in shared placement than the same code run from a temporary
    tree, whichever side it was on (an A/A run of the gate's rows, 15 rounds each way); from two
    temporary trees, 1 %. So both sides run from trees made alike."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tapbench-candidate-"))

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    def __enter__(self) -> "CandidateTree":
        try:
            for part in CANDIDATE_PARTS:
                shutil.copytree(ROOT / part, self.tree / part, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()


# --- the workers --------------------------------------------------------------------------

class Worker:
    """A bench/gate/worker.py process running the code of one tree; environment: extra variables for
    it alone (the power benchmark's injected regressions)."""

    def __init__(self, tree: Path, name: str, environment: dict | None = None):
        self.name = name
        env = os.environ | {"PYTHONPATH": str(tree)} | (environment or {})
        self.process = subprocess.Popen([sys.executable, "-m", "bench.gate.worker"], cwd=tree, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._answer()
        if hello.get("contract") != OBSERVER_CONTRACT:
            self.close()
            raise GateError(f"{name}'s methods/ speak Observer contract {hello.get('contract')}, this harness "
                            f"{OBSERVER_CONTRACT}: choose a newer --against")

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise GateError(f"the {self.name} worker ended (exit status {self.process.poll()})")
        return json.loads(line)

    def run(self, method: str, options: dict, workload: Workload) -> dict:
        self.process.stdin.write(json.dumps({"method": method, "options": options,
                                             "workload": workload.__dict__}) + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if "error" in answer:
            raise GateError(f"{method} under {self.name}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- measuring and judging ------------------------------------------------------------------

@dataclass
class Pairs:
    """One technique in one placement: per repeat, the bare run and the two sides."""

    method: str
    placement: str
    bare: list = field(default_factory=list)
    a: list = field(default_factory=list)
    b: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.method} {self.placement}"


def interleave(rows, placements, repeats: int, reference: Worker, candidate: Worker, progress=print,
               into: dict[tuple, Pairs] | None = None) -> dict[tuple, Pairs]:
    """repeats rounds of bare, A and B for every row and placement, the order rotating each
    round so that a drift of the machine hits each side alike."""
    found = into if into is not None else {}
    for repeat in range(repeats):
        for method, options, target, moves in rows:
            for placement in placements:
                workload = Workload(target, moves, placement=placement)
                pairs = found.setdefault((method, placement), Pairs(method, placement))
                runs = [("bare", candidate, "none", {}), ("a", reference, method, options),
                        ("b", candidate, method, options)]
                shift = repeat % len(runs)
                done = {}
                for side, worker, name, opts in runs[shift:] + runs[:shift]:
                    progress(f"A/B round {repeat + 1}/{repeats}: {method} {placement} {side}")
                    done[side] = worker.run(name, opts, workload)
                for side in ("bare", "a", "b"):
                    getattr(pairs, side).append(done[side])
    return found


def slowdowns(runs: list, bare: list) -> np.ndarray:
    return np.array([(r["ns_per_move"] - b["ns_per_move"]) / b["ns_per_move"] for r, b in zip(runs, bare)])


def costs(runs: list, bare: list) -> np.ndarray:
    return np.array([((r["target_loop_cpu_ns"] - b["target_loop_cpu_ns"]) + (r["observer_cpu_ns"] - b["observer_cpu_ns"]))
                     / max(r["written"], 1) for r, b in zip(runs, bare)])


@dataclass
class Verdict:
    label: str
    metric: str  # "slowdown" or "cost"
    a: float  # medians, ns per move (slowdown: of the overhead)
    b: float
    change: float  # (b − a) / |a|
    p: float | None
    p_holm: float | None = None
    failed: bool = False
    note: str = ""


def judge(found: dict[tuple, Pairs], threshold: float = THRESHOLD, alpha: float = ALPHA,
          accept_inexact: bool = False, accept_few: bool = False) -> list[Verdict]:
    """Every row and metric: B against A, repeat by repeat. Capture is exact or the row fails;
    a reference that was not exact, or too few repeats to decide, fail too unless accepted."""
    from scipy.stats import wilcoxon

    verdicts = []
    for pairs in found.values():
        na = next((r["not_applicable"] for r in pairs.a + pairs.b if r["not_applicable"]), None)
        if na:
            verdicts.append(Verdict(pairs.label, "capture", 0, 0, 0, None, failed=True,
                                    note=f"not applicable here ({na}): a gated row must run"))
            continue
        if not all(r["exact"] for r in pairs.b):
            verdicts.append(Verdict(pairs.label, "capture", 0, 0, 0, None, failed=True, note="CAPTURE NOT EXACT"))
            continue
        if not all(r["exact"] for r in pairs.a):
            verdicts.append(Verdict(pairs.label, "capture", 0, 0, 0, None, failed=not accept_inexact,
                                    note="the reference's capture was not exact" +
                                    (" (accepted)" if accept_inexact else ": nothing to compare with")))
            continue
        for metric, measure in (("slowdown", slowdowns), ("cost", costs)):
            a, b = measure(pairs.a, pairs.bare), measure(pairs.b, pairs.bare)
            if metric == "slowdown":  # as ns of overhead, so that the change reads like the cost's
                bare = np.array([r["ns_per_move"] for r in pairs.bare])
                a, b = a * bare, b * bare
            middle_a, middle_b = float(np.median(a)), float(np.median(b))
            change = (middle_b - middle_a) / abs(middle_a) if middle_a else float("inf")
            if len(a) < MIN_PAIRS:
                verdicts.append(Verdict(pairs.label, metric, middle_a, middle_b, change, None, failed=not accept_few,
                                        note=f"{len(a)} repeats: too few to decide"))
                continue
            differences = b - a
            p = float(wilcoxon(differences, alternative="greater").pvalue) if np.any(differences) else 1.0
            verdicts.append(Verdict(pairs.label, metric, middle_a, middle_b, change, p))
    tested = [v for v in verdicts if v.p is not None]
    for verdict, adjusted in zip(tested, holm_adjusted([v.p for v in tested])):
        verdict.p_holm = adjusted
        verdict.failed = adjusted < alpha and verdict.change > threshold
        verdict.note = "SLOWER" if verdict.failed else ""
    return verdicts


def table(verdicts: list[Verdict]) -> str:
    from tabulate import tabulate

    def ns(value: float) -> str:
        return f"{value / 1000:.2f} µs" if abs(value) >= 1000 else f"{value:.0f} ns"

    return tabulate([[v.label, v.metric, ns(v.a) if v.metric != "capture" else "-",
                      ns(v.b) if v.metric != "capture" else "-",
                      f"{v.change:+.0%}" if v.metric != "capture" else "-",
                      "-" if v.p is None else f"{v.p:.4f}", "-" if v.p_holm is None else f"{v.p_holm:.4f}",
                      v.note or "ok"] for v in verdicts],
                    headers=["row", "compared", "reference (A)", "this code (B)", "change", "p (B > A)",
                             "Holm p", "verdict"], tablefmt="simple", disable_numparse=True)


def rows_here(accept_missing: bool, placements=PLACEMENTS) -> tuple[list, tuple[str, ...], list[str]]:
    """The gated rows and placements this machine can run, and the reasons for any it cannot
    (which fail the gate unless accepted)."""
    rows, missing = [], []
    for method, options, target, moves in ROWS:
        reason = REGISTRY[method].unavailable_reason(**options)
        if reason:
            missing.append(f"{method}: {reason}")
        else:
            rows.append((method, options, target, moves))
    here = tuple(p for p in placements if p != "split" or split_applicable())
    if len(here) < len(placements):
        missing.append("split placement: this machine has one CPU")
    return rows, here, missing


def ab_gate(ref: str, repeats: int = REPEATS, confirm_repeats: int = CONFIRM_REPEATS,
            threshold: float = THRESHOLD, alpha: float = ALPHA, accept_missing: bool = False,
            accept_inexact: bool = False, accept_few: bool = False, candidate_env: dict | None = None,
            progress=lambda text: None, say=print) -> bool:
    """Measure REF's backends against this code's, judge, confirm; True when the gate passes."""
    rows, placements, missing = rows_here(accept_missing)
    for reason in missing:
        say(f"{'warning' if accept_missing else 'ERROR'}: not gated: {reason}")
    if missing and not accept_missing:
        return False
    with ReferenceTree(ref) as reference_tree, CandidateTree() as candidate_tree, \
            Worker(reference_tree.tree, f"reference {ref[:12]}") as reference, \
            Worker(candidate_tree.tree, "this code", candidate_env) as candidate:
        found = interleave(rows, placements, repeats, reference, candidate, progress)
        verdicts = judge(found, threshold, alpha, accept_inexact, accept_few)
        say(table(verdicts))
        slower = {(v.label.split()[0], v.label.split()[1]) for v in verdicts if v.failed and v.metric != "capture"}
        if slower and confirm_repeats:
            say(f"speed regression in {', '.join(' '.join(key) for key in sorted(slower))}: confirming with "
                f"{confirm_repeats} more rounds of those rows")
            again_rows = [row for row in rows if any(row[0] == method for method, _ in slower)]
            again_places = tuple(sorted({place for _, place in slower}))
            confirmed = judge(interleave(again_rows, again_places, confirm_repeats, reference, candidate, progress),
                              threshold, alpha, accept_inexact, accept_few)
            say(table(confirmed))
            still = {v.label for v in confirmed if v.failed}
            for verdict in verdicts:
                if verdict.failed and verdict.metric != "capture" and verdict.label not in still:
                    verdict.failed, verdict.note = False, "SLOWER once, not confirmed"
    return not any(v.failed for v in verdicts)
