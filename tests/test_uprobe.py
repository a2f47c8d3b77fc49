"""The uprobe backend against the real kernel and the real Go opponent."""
import shutil

import pytest

import methods.uprobe
from bench.run.runner import execute
from bench.run.targets import Workload
from bench.run.truth import Truth
from bench.run.verify import verify
from methods import REGISTRY
from methods.uprobe import ProbeSiteMissing, UprobeObserver, probe_site
from tests.conftest import OPPONENT, OPPONENT_CGO

reason = REGISTRY["uprobe"].unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=f"uprobe unavailable: {reason}")


@pytest.mark.parametrize("binary", [OPPONENT, OPPONENT_CGO])
def test_the_probe_site_is_read_from_the_code_past_the_stack_check(binary):
    offset, stack_check_found = probe_site(str(binary))
    assert stack_check_found and offset > 0
    code = binary.read_bytes()  # the jbe that ends the check is the last thing before it
    assert b"\x49\x3b\x66\x10" in code


def test_a_binary_replaced_in_place_is_read_again(tmp_path):
    binary = tmp_path / "opponent"
    shutil.copyfile(OPPONENT, binary)
    assert probe_site(str(binary))[1]
    binary.write_bytes(b"#!/bin/sh\necho rock\n")  # another size and time: not the file read before
    with pytest.raises(ProbeSiteMissing, match="is not an ELF program \\(a script\\?\\): no syscall.write to probe"):
        probe_site(str(binary))
    binary.write_bytes(b"\x7fELF and then nothing an ELF reader can use")
    with pytest.raises(ProbeSiteMissing, match="cannot read syscall.write"):
        probe_site(str(binary))


@pytest.mark.parametrize("target,goroutines", [("go", 1), ("go", 8), ("cgo", 1), ("cgo", 8)])
def test_exact_on_go_writes(target, goroutines):
    execution = execute("uprobe", {}, Workload(target, 50_000, goroutines=goroutines))
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (50_000, 0, 0, True), verdict
    assert execution.mechanism["uprobe"]["stack_check_found"]


def test_libc_writes_are_a_finding():
    execution = execute("uprobe", {}, Workload("libc", 2000))
    assert execution.not_applicable == "0 of 2000 writes to the watched descriptor passed through Go's syscall.write"


def test_a_program_without_syscall_write_is_a_finding():
    with UprobeObserver() as observer:
        process = observer.launch(["/bin/true"])
        observer.release()
        assert list(observer.events()) == []
        assert process.wait() == 0
    assert "no syscall.write to probe" in observer.not_applicable(0)


def fresh_stack_capture(tmp_path, moves):
    """Every move written from a new goroutine at a varying stack depth: some writes grow
    their stack inside the write path."""
    report = tmp_path / "truth.json"
    with UprobeObserver() as observer:
        process = observer.launch([str(OPPONENT), "-moves", str(moves), "-fresh-stacks", "-report", str(report)])
        observer.release()
        events = [(e.pid, e.raw) for e in observer.events()]
        assert process.wait() == 0
    truth = Truth.load(str(report))
    return verify(events, truth.seed, truth.counts, truth.report["pid"])


# About 1 write in 15,000 of the -fresh-stacks opponent grows its stack inside syscall.write
# (measured here: 7 in 100,000): 200,000 writes make a control without one a one-in-a-million
# event.
FRESH_STACK_MOVES = 200_000


def test_a_write_that_grows_its_stack_is_seen_once(tmp_path, monkeypatch):
    verdict = fresh_stack_capture(tmp_path, FRESH_STACK_MOVES)
    assert verdict.exact and verdict.duplicates == 0, verdict
    # The control: the same probe at the function's first instruction sees some writes twice
    # (runtime.morestack jumps back there), which is why the offset is taken past the check.
    monkeypatch.setattr(methods.uprobe, "probe_site", lambda binary: (0, False))
    control = fresh_stack_capture(tmp_path, FRESH_STACK_MOVES)
    assert control.duplicates > 0 and control.captured == FRESH_STACK_MOVES, control
