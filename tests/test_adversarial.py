"""Adversarial writes: the opponent's own non-moves and a bystander's fake moves. Every
backend keeps precision at 100% and counts each non-move as such."""
import subprocess
import sys

import pytest

from bench.run.runner import execute
from bench.run.targets import Workload
from methods import REGISTRY

CASES = [("ebpf", {}, "go"), ("ptrace", {"strategy": "seccomp"}, "go"),
         ("ptrace", {"strategy": "step"}, "go"), ("preload", {}, "libc"), ("strace", {}, "go")]


@pytest.mark.parametrize("method,options,target", CASES,
                         ids=["ebpf", "ptrace-seccomp", "ptrace-step", "preload", "strace"])
def test_non_moves_and_a_bystander_never_become_moves(method, options, target):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    # A bystander writes well-formed move lines to its own stdout all along.
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import os\nwhile True: os.write(1, b'rock 0 0\\n')"],
        stdout=subprocess.DEVNULL)
    try:
        execution = execute(method, options, Workload(target, 4000, goroutines=4, noise=100))
    finally:
        bystander.kill()
        bystander.wait()
    verdict = execution.verdict
    truth = execution.truth.report
    assert truth["noise_writes_stdout"] == 4000 // 100 * 5 and truth["noise_writes_other_fd"] == 40
    assert (verdict.captured, verdict.phantom, verdict.wrong_pid) == (4000, 0, 0)
    assert verdict.not_a_move == truth["noise_writes_stdout"]  # the other fd's writes: unseen
    assert verdict.exact


# Backends whose mechanism follows the target's children too (strace -f, an inherited seccomp
# filter): a child's write must come out with the child's process, for the verifier to reject.
@pytest.mark.parametrize("method", ["strace", "unotify"])
def test_a_child_process_write_is_not_taken_for_the_target(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    # dash's printf is a builtin: the first line is written by the target itself, the second
    # by the subshell, a forked child that then lives on for a second (so it can be looked up).
    script = "printf 'rock 0 0\\n'; (printf 'rock 0 1\\n'; sleep 1)"
    with REGISTRY[method]() as observer:
        process = observer.launch(["/bin/sh", "-c", script])
        observer.release()
        events = list(observer.events())
        process.wait()
    writers = [(event.raw, event.pid == observer.pid) for event in events]
    assert writers == [(b"rock 0 0\n", True), (b"rock 0 1\n", False)], writers
    assert observer.facts()["threads_unresolved"] == 0
