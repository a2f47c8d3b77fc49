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
