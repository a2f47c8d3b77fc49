"""The regression gate: exact on correctness, statistical and ratio-only on speed."""
import os
import subprocess
import sys

import pytest

from bench.document.compare import compare_documents
from bench.document.rows import Document, Row
from methods import REGISTRY


def document(overheads, exact=True, cpu="cpu A", bare=500.0, runs=True, skipped=()):
    samples_bare = [bare] * len(overheads)
    row = Row(method="ebpf", options={"hook": "raw"}, target="go", goroutines=1, moves=1000, rate=0.0,
              exact=exact, paced=False, samples_bare_ns_per_move=samples_bare,
              samples_observed_ns_per_move=[bare + o for o in overheads])
    return Document(metadata={"kernel": "6.18", "cpu_model": cpu, "cpu_count": 2, "lockdown": "none"},
                    methods={}, runs=[row] if runs else [], skipped=list(skipped))


def write(path, found: Document) -> None:
    found.write(path)


BASE = [400, 410, 390, 405, 395, 400]


def test_same_results_pass():
    changes, warnings = compare_documents(document(BASE), document(BASE))
    assert not changes[0].speed_regressed and not changes[0].correctness_regressed and warnings == []


def test_a_lost_exact_capture_fails_whatever_the_speed():
    (change,), _ = compare_documents(document(BASE), document(BASE, exact=False))
    assert change.correctness_regressed


def test_a_significant_slowdown_beyond_the_threshold_fails():
    (change,), _ = compare_documents(document(BASE), document([o * 1.5 for o in BASE]))
    assert change.speed_regressed and change.p_value < 0.01 and round(change.change, 2) == 0.5


def test_a_consistent_but_small_slowdown_passes():
    (change,), _ = compare_documents(document(BASE), document([o * 1.05 for o in BASE]))
    assert change.p_value < 0.01 and not change.speed_regressed  # below the 10% threshold


def test_a_noisy_difference_is_not_significant():
    noisy = [300, 700, 350, 650, 420, 380]
    (change,), _ = compare_documents(document(BASE), document(noisy))
    assert not change.speed_regressed


def test_too_few_repeats_are_not_judged_on_speed():
    (change,), _ = compare_documents(document(BASE[:3]), document([o * 3 for o in BASE[:3]]))
    assert not change.speed_regressed and "speed not tested" in change.note


def test_ratios_travel_across_machines_with_a_warning():
    # Twice the bare time elsewhere, same overhead ratio: no regression, one warning.
    other = document([o * 2 for o in BASE], cpu="cpu B", bare=1000.0)
    (change,), warnings = compare_documents(document(BASE), other)
    assert not change.speed_regressed and "machines differ (cpu_model)" in warnings[0]


def test_gate_command_exits_1_on_a_regression(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write(old, document(BASE))
    write(new, document(BASE, exact=False))
    result = subprocess.run([sys.executable, "-m", "bench", "gate", str(new), "--baseline", str(old)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "CAPTURE REGRESSED" in result.stdout
    result = subprocess.run([sys.executable, "-m", "bench", "gate", str(old), "--baseline", str(old)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "gate passed" in result.stdout


def test_an_injected_2x_slowdown_fails():
    (change,), _ = compare_documents(document(BASE), document([o * 2 for o in BASE]))
    assert change.speed_regressed and round(change.change, 2) == 1.0


def test_a_slowdown_on_another_machine_is_reported_not_failed(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write(old, document(BASE))
    write(new, document([o * 2 for o in BASE], cpu="cpu B"))
    result = subprocess.run([sys.executable, "-m", "bench", "gate", str(new), "--baseline", str(old)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "SLOWER" in result.stdout and "another machine" in result.stderr
    result = subprocess.run([sys.executable, "-m", "bench", "gate", str(new), "--baseline", str(old),
                             "--across-machines"], capture_output=True, text=True)
    assert result.returncode == 1


def gate(new, baseline, *extra):
    return subprocess.run([sys.executable, "-m", "bench", "gate", str(new), "--baseline", str(baseline), *extra],
                          capture_output=True, text=True)


def test_a_row_missing_from_the_new_results_fails(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write(old, document(BASE))
    write(new, document(BASE, runs=False))
    result = gate(new, old)
    assert result.returncode == 1 and "MISSING from the new results" in result.stdout


def test_a_missing_row_is_excused_only_for_a_method_unavailable_on_another_machine(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write(old, document(BASE))
    skipped = [{"method": "ebpf", "reason": "bcc is not importable"}]
    write(new, document(BASE, runs=False, skipped=skipped))
    assert gate(new, old).returncode == 1  # same machine: bcc broke here, nothing was tested
    write(new, document(BASE, cpu="cpu B", runs=False, skipped=skipped))
    result = gate(new, old)
    assert result.returncode == 0 and "skipped here (bcc is not importable)" in result.stdout


@pytest.mark.skipif(REGISTRY["ptrace"].unavailable_reason() is not None,
                    reason=f"ptrace unavailable: {REGISTRY['ptrace'].unavailable_reason()}")
def test_a_real_backend_made_slower_fails_the_gate(tmp_path):
    """End to end: ptrace measured twice by `tapbench run`, the second time with busy work
    added to every stop through its test-only knob; the gate must fail the second."""
    from methods.ptrace import EXTRA_WORK_VARIABLE

    def measure(path, extra_ns):
        environment = os.environ | {EXTRA_WORK_VARIABLE: str(extra_ns)}
        result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ptrace", "--moves", "2000",
                                 "--repeats", "6", "--json", str(path)], capture_output=True, text=True,
                                env=environment)
        assert result.returncode == 0, result.stderr

    base, slowed = tmp_path / "base.json", tmp_path / "slowed.json"
    measure(base, 0)
    measure(slowed, 100_000)  # 0.1 ms per move: several times ptrace's own cost
    result = gate(slowed, base)
    assert result.returncode == 1 and "SLOWER" in result.stdout, result.stdout
    assert gate(base, base).returncode == 0


# --- the same-run A/B gate (bench/gate/ab.py) ---------------------------------------------------

from bench.gate import ab  # noqa: E402


def side(ns_per_move, loop_cpu_ns=300_000, observer_cpu_ns=50_000, exact=True):
    return {"ns_per_move": ns_per_move, "written": 1000, "target_loop_cpu_ns": loop_cpu_ns,
            "observer_cpu_ns": observer_cpu_ns, "exact": exact, "not_applicable": None}


def pairs(a_overhead, b_overhead, repeats=8, b_observer=50_000, exact=True):
    found = ab.Pairs("ebpf", "split")
    for i in range(repeats):
        bare = 300.0 + 10 * (i % 3)  # the machine drifts; each side is paired with its repeat's bare run
        found.bare.append(side(bare, 300_000, 10_000))
        found.a.append(side(bare + a_overhead * (1 + 0.02 * (i % 2)), 300_000 + 1000 * a_overhead))
        found.b.append(side(bare + b_overhead * (1 + 0.02 * (i % 3)), 300_000 + 1000 * b_overhead, b_observer,
                            exact))
    return {("ebpf", "split"): found}


def test_the_same_code_passes_and_a_quarter_more_overhead_fails():
    assert not any(v.failed for v in ab.judge(pairs(100, 100)))
    verdicts = ab.judge(pairs(100, 125))
    slowdown = next(v for v in verdicts if v.metric == "slowdown")
    assert slowdown.failed and slowdown.change == pytest.approx(0.25, abs=0.03) and slowdown.p_holm < 0.05


def test_a_consumer_made_dearer_fails_on_the_cost_though_the_target_does_not_feel_it():
    verdicts = ab.judge(pairs(100, 100, b_observer=150_000))  # +100 ns of observer CPU per event
    assert [v.metric for v in verdicts if v.failed] == ["cost"]


def test_the_gate_fails_closed_when_it_cannot_judge():
    (capture,) = ab.judge(pairs(100, 100, exact=False))
    assert capture.failed and capture.note == "CAPTURE NOT EXACT"
    reference_inexact = pairs(100, 100)
    reference_inexact["ebpf", "split"].a[0]["exact"] = False
    (verdict,) = ab.judge(reference_inexact)
    assert verdict.failed and "reference's capture was not exact" in verdict.note
    assert not ab.judge(reference_inexact, accept_inexact=True)[0].failed
    few = ab.judge(pairs(100, 100, repeats=3))
    assert all(v.failed and "too few to decide" in v.note for v in few)
    assert not any(v.failed for v in ab.judge(pairs(100, 100, repeats=3), accept_few=True))


def test_a_reference_not_in_this_clone_fails_closed_and_says_why():
    with pytest.raises(ab.GateError, match="is not in this clone's history"):
        ab.ReferenceTree("0" * 40)


@pytest.mark.skipif(REGISTRY["ptrace"].unavailable_reason() is not None, reason="ptrace unavailable")
def test_the_ab_gate_measures_both_sides_here_and_catches_a_slower_stop_path():
    """End to end, kept short: ptrace only, shared placement; the reference is this very commit
    (its backends checked out and built apart), the candidate the same code with busy work added
    at every stop through its test-only knob."""
    from methods.ptrace import EXTRA_WORK_VARIABLE

    head = ab._git("rev-parse", "HEAD")
    row = [("ptrace", {}, "go", 2000)]
    with ab.ReferenceTree(head) as tree:
        assert all((tree.tree / library).exists() for library in ab.REFERENCE_LIBRARIES)
        with ab.CandidateTree() as copy:
            # this code as it is, built parts included, without any of the checkout's bytecode
            assert (copy.tree / "methods" / "ptrace.py").read_bytes() == (ab.ROOT / "methods" / "ptrace.py").read_bytes()
            assert all((copy.tree / library).exists() for library in ab.REFERENCE_LIBRARIES)
            assert not list(copy.tree.rglob("__pycache__"))
            with ab.Worker(tree.tree, "reference") as reference, \
                    ab.Worker(copy.tree, "slower", {EXTRA_WORK_VARIABLE: "20000"}) as slower:
                verdicts = ab.judge(ab.interleave(row, ("shared",), 6, reference, slower, progress=lambda text: None))
    assert {v.metric for v in verdicts if v.failed} == {"slowdown", "cost"}
    assert not tree.root.exists() and not copy.root.exists()  # the worktree and the copy are gone
    assert str(tree.tree) not in ab._git("worktree", "list")
