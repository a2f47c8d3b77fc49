"""bpftrace, the reference peer: its one-liner's output goes through the same verifier."""
import os
import shutil
import signal
import psutil
import pytest

from bench.run.runner import execute
from bench.run.targets import Workload
from methods.bpftrace import BpftraceObserver, program_for
from tests.conftest import loaded_bpf_program_ids, wait_until_unloaded

reason = BpftraceObserver.unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=f"bpftrace unavailable: {reason}")


def bpftrace_processes():
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "bpftrace"}


def test_the_one_liner_filters_the_pid_and_stdout_and_reads_32_bytes():
    program = program_for(4242)
    assert "pid == 4242 && args->fd == 1" in program and "args->count < 32" in program


def test_a_paced_launch_is_captured_exactly_and_leaves_nothing():
    programs_before, tracers_before = loaded_bpf_program_ids(), bpftrace_processes()
    # One CPU for all: bpftrace's per-CPU perf buffers reorder the writes of a target that
    # moves between CPUs (a finding the sweep reports); here the capture itself is checked.
    execution = execute("bpftrace", {}, Workload("go", 3000, rate=3000, placement="shared"))
    assert execution.verdict.exact, execution.verdict
    assert execution.lost_reported == 0
    assert bpftrace_processes() - tracers_before == set()
    assert wait_until_unloaded(loaded_bpf_program_ids() - programs_before) == set()


def test_adversarial_writes_are_counted_as_non_moves_never_as_moves():
    execution = execute("bpftrace", {}, Workload("go", 2000, rate=4000, noise=200, placement="shared"))
    assert execution.verdict.phantom == 0 and execution.verdict.captured == 2000
    assert execution.verdict.not_a_move == execution.verdict.expected_not_a_move > 0


def test_attach_sees_the_running_opponent_and_stop_ends_it(running_opponent):
    process, _ = running_opponent("-moves", "1000000", "-rate", "2000")
    with BpftraceObserver() as observer:
        observer.attach(process.pid)
        os.kill(process.pid, signal.SIGUSR1)
        seen = 0
        for event in observer.events():
            assert event.pid == process.pid and event.move
            seen += 1
            if seen == 50:
                observer.stop()
    assert seen >= 50 and process.poll() is None  # left running


def test_a_missing_bpftrace_is_one_line_with_the_fix(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert BpftraceObserver.unavailable_reason() == \
        "bpftrace is not installed (Debian package bpftrace; `make setup` installs it)"
