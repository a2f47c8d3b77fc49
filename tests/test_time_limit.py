"""Every test has a time limit (pytest-timeout, configured in pyproject.toml): a test that hangs
fails within it, named, with the traceback of where it hung, and leaves nothing behind: no
process running or stopped, no BPF program loaded, vm.mmap_min_addr as it was. Tests made to
hang are run by a pytest of their own, with the project's configuration and a short limit."""
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree

import psutil
import pytest

from bench.run.targets import ROOT
from methods.ebpf import EbpfObserver
from methods.zpoline import MMAP_MIN_ADDR, ZpolineObserver
from tests.conftest import loaded_bpf_program_ids, wait_until_unloaded

LIMIT_S = 8
HANGING_TESTS = '''
import os
import re
import subprocess
import time

from methods.ebpf import EbpfObserver
from methods.zpoline import ZpolineObserver
from tests.conftest import OPPONENT


def record(pid):
    with open(os.environ["TAPBENCH_TEST_PIDS"], "a") as f:
        f.write(f"{pid}\\n")


def test_hangs_waiting_for_a_stopped_target_and_leaks_a_process(special_calls_program):
    # the hang CI once met: a target stopped for good, its observer waiting for its exit
    record(subprocess.Popen(["sleep", "1000"]).pid)  # and a process the test forgets
    with ZpolineObserver() as observer:
        observer.launch([special_calls_program, "--stop"], stdout=subprocess.DEVNULL)
        observer.release()
        record(observer.pid)
        for _ in observer.batches():
            pass


def test_hangs_while_vm_mmap_min_addr_is_lowered(special_calls_program):
    with ZpolineObserver() as observer:
        observer.launch([special_calls_program], stdout=subprocess.DEVNULL)
        record(observer.pid)
        time.sleep(10**6)  # before release(): the setting is still 0


def test_hangs_with_a_bpf_program_loaded():
    with EbpfObserver(loader="core") as observer:
        observer.launch([str(OPPONENT), "-moves", "100000000", "-rate", "100"], stdout=subprocess.DEVNULL)
        observer.release()
        record(observer.pid)
        time.sleep(10**6)
'''


def run_pytest(tests, *flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """pytest on one file, with the project's configuration and tests/conftest.py's fixtures;
    its outcomes in junit.xml beside the file."""
    return subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "-p", "tests.conftest",
                           "-p", "no:cacheprovider", f"--junitxml={tests.parent / 'junit.xml'}", *flags, str(tests)],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ | (env or {}),
                          timeout=3 * LIMIT_S + 120)


def junit_outcomes(where) -> dict[str, list]:
    """test name -> [its failure's message, what its teardown found left behind] (None: none)."""
    outcomes = {}
    for case in ElementTree.parse(where / "junit.xml").iter("testcase"):
        failure, error = case.find("failure"), case.find("error")
        left = None if error is None else re.search(r"left behind: (.*) \(removed\)", error.get("message"))
        outcome = outcomes.setdefault(case.get("name"), [None, None])  # a teardown error is an entry of its own
        if failure is not None:
            outcome[0] = failure.get("message").splitlines()[0]
        if left is not None:
            outcome[1] = left.group(1)
    return outcomes


def test_a_hanging_test_fails_within_its_limit_named_and_leaves_nothing_behind(tmp_path):
    for cls in (ZpolineObserver, EbpfObserver):
        reason = cls.unavailable_reason(**({"loader": "core"} if cls is EbpfObserver else {}))
        if reason:
            pytest.skip(f"{cls.method} unavailable: {reason}")
    tests = tmp_path / "test_hanging.py"
    tests.write_text(HANGING_TESTS)
    pids = tmp_path / "pids"
    mmap_min_addr, programs = MMAP_MIN_ADDR.read_text(), loaded_bpf_program_ids()
    result = run_pytest(tests, f"--timeout={LIMIT_S}", env={"TAPBENCH_TEST_PIDS": str(pids)})
    assert result.returncode == 1, result.stdout + result.stderr
    outcomes = junit_outcomes(tmp_path)
    timed_out = f"Failed: Timeout (>{LIMIT_S:.1f}s) from pytest-timeout."
    assert [outcomes[name][0] for name in ("test_hangs_waiting_for_a_stopped_target_and_leaks_a_process",
                                           "test_hangs_while_vm_mmap_min_addr_is_lowered",
                                           "test_hangs_with_a_bpf_program_loaded")] == [timed_out] * 3, outcomes
    report = result.stdout
    # the traceback says where each hung
    assert "in batches" in report and "time.sleep(10**6)" in report, report
    # the forgotten process was found, removed, and named
    leaked = int(pids.read_text().split()[0])
    assert outcomes["test_hangs_waiting_for_a_stopped_target_and_leaks_a_process"][1].startswith(
        f"process {leaked} (sleep, "), outcomes
    recorded = [int(pid) for pid in pids.read_text().split()]
    assert len(recorded) == 4
    assert [pid for pid in recorded if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE] == []
    assert MMAP_MIN_ADDR.read_text() == mmap_min_addr and ZpolineObserver.leftovers() == set()
    assert wait_until_unloaded(loaded_bpf_program_ids() - programs) == set()


def test_a_test_that_leaves_a_stopped_process_fails_naming_it(tmp_path):
    tests = tmp_path / "test_leaky.py"
    tests.write_text(textwrap.dedent('''
        import os, signal, subprocess

        def test_leaves_a_stopped_process():
            child = subprocess.Popen(["sleep", "1000"])
            os.kill(child.pid, signal.SIGSTOP)
            os.waitpid(child.pid, os.WSTOPPED)
            print(f"PID {child.pid}")
    '''))
    result = run_pytest(tests, "-s")
    pid = int(result.stdout.split("PID ")[1].split()[0])
    assert result.returncode == 1, result.stdout
    assert junit_outcomes(tmp_path) == {"test_leaves_a_stopped_process": [
        None, f"process {pid} (sleep, stopped)"]}
    assert not psutil.pid_exists(pid)
