"""The seccomp user-notification backend against the real kernel and the real Go opponent."""
import os
import subprocess
import sys

import pytest

from bench.runner import execute
from bench.targets import ROOT, Workload
from methods import REGISTRY
from methods.process import effective_capabilities

reason = REGISTRY["unotify"].unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=f"unotify unavailable: {reason}")


@pytest.mark.parametrize("target", ["go", "cgo", "libc"])
@pytest.mark.parametrize("goroutines", [1, 8])
def test_exact_on_every_build_with_1_and_8_writers(target, goroutines):
    execution = execute("unotify", {}, Workload(target, 100_000, goroutines=goroutines))
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (100_000, 0, 0, True), verdict
    assert verdict.wrong_pid == 0
    # The opponent's own self-check: a seccomp filter is visible, no tracer is.
    check = execution.truth.report["self_check_start"]
    assert check["seccomp"] == 2 and check["tracer_pid"] == 0
    facts = execution.mechanism["unotify"]
    assert facts["sync_wake_up"] in (True, False) and facts["retried"] >= 0


def test_with_cap_sys_admin_the_target_keeps_no_new_privs_unset():
    if 21 not in effective_capabilities():
        pytest.skip("needs CAP_SYS_ADMIN (root)")
    execution = execute("unotify", {}, Workload("go", 1000))
    assert execution.truth.report["self_check_start"]["no_new_privs"] == 0


@pytest.mark.skipif(len(effective_capabilities()) < 30, reason="needs root, to drop every capability")
def test_it_needs_no_capability_and_then_sets_no_new_privs(tmp_path):
    out = tmp_path / "run.json"
    result = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", sys.executable, "-m",
                             "bench", "run", "--method", "unotify", "--moves", "2000", "--repeats", "1",
                             "--json", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "2000/2000 exact" in result.stdout
    import json
    (row,) = json.loads(out.read_text())["runs"]
    assert row["self_checks"][0]["no_new_privs"] == 1  # what a filter without CAP_SYS_ADMIN costs


def test_a_target_whose_supervisor_is_gone_gets_enosys_for_its_writes(tmp_path):
    """What the launched target experiences when the listener goes away without it (tapbench
    killed, were it not for PR_SET_PDEATHSIG): every later write to stdout fails with ENOSYS."""
    from bench.truth import Truth
    from methods.unotify import UnotifyObserver

    report = tmp_path / "truth.json"
    with UnotifyObserver() as observer:
        process = observer.launch(Workload("go", 2000, rate=2000).argv(str(report)))
        observer.release()
        for seen, _ in enumerate(observer.events(), 1):
            if seen == 100:
                break
        os.close(observer._listener)  # the supervisor's end, gone
        observer._listener = None
        returncode = process.wait(timeout=30)
    writers = Truth.load(str(report)).report["writers"]
    assert returncode == 1  # the opponent says it could not write all its moves
    assert writers[0]["errors"] > 0 and writers[0]["written"] >= 100
