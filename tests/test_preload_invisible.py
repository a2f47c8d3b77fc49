"""The LD_PRELOAD hook must be invisible to what the target does: the same small C program
(tests/hook_cases.c) runs with and without it, and what the program observes (exit status,
return values and errno it prints on stderr, the bytes on its stdout) must be identical.
What the hook records, and what it misses, is checked too: the misses are findings, listed in
the README."""
import subprocess
import sys

import pytest

from bench.run.targets import ROOT
from methods._kernel.preload_ring import HOOK_LIBRARY
from methods.preload import PreloadObserver
from tests.conftest import run_watched

pytestmark = pytest.mark.skipif(not HOOK_LIBRARY.exists(), reason="hook not built (make build)")
CASES_SOURCE = ROOT / "tests" / "hook_cases.c"


@pytest.fixture(scope="module")
def cases_program(tmp_path_factory):
    program = tmp_path_factory.mktemp("hook-cases") / "hook_cases"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(program), str(CASES_SOURCE), "-lpthread"],
                   check=True)
    return str(program)


def plain(program: str, case: str) -> tuple[int, bytes, bytes]:
    # The output pipe is read only once the program has ended, as in the hooked run: cases
    # that fill it on purpose must find it full.
    process = subprocess.Popen([program, case], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    returncode = process.wait(timeout=60)
    return returncode, process.stdout.read(), process.stderr.read()


def hooked(program: str, case: str) -> tuple[tuple[int, bytes, bytes], list, PreloadObserver]:
    with PreloadObserver() as observer:
        outcome, events = run_watched(observer, [program, case])
    return outcome, events, observer


def same_with_and_without(program: str, case: str):
    without = plain(program, case)
    with_hook, events, observer = hooked(program, case)
    assert with_hook == without, f"{case}: the hook changed what the program observed"
    return without, events, observer


def test_a_bad_pointer_gets_efault_not_a_crash(cases_program):
    (returncode, out, err), events, observer = same_with_and_without(cases_program, "bad_pointer")
    assert returncode == 0 and err.count(b"Bad address") == 2 and out == b"rock 0 0\n"
    # The failed writes wrote nothing: counted, not recorded.
    assert [e.raw for e in events] == [b"rock 0 0\n"] and observer.failed_writes == 2


def test_partial_writes_and_eagain_are_unchanged(cases_program):
    (returncode, out, err), events, observer = same_with_and_without(cases_program, "nonblocking")
    returns = [int(line.split(" -> ")[1].split()[0]) for line in err.decode().splitlines()]
    assert returncode == 0 and returns[-1] == -1 and b"Resource temporarily unavailable" in err
    assert any(0 < r < 10000 for r in returns), "no partial write happened"
    # One event per write that wrote something, each holding at most what was written.
    assert len(events) == len(returns) - 1 and observer.failed_writes == 1
    assert sum(len(e.raw) for e in events) == 32 * len(events)


def test_eintr_is_unchanged(cases_program):
    (returncode, _, err), events, observer = same_with_and_without(cases_program, "eintr")
    assert returncode == 0 and b"on a full pipe -> -1 Interrupted system call" in err
    assert observer.failed_writes >= 2  # the EAGAIN that ended the filling, then the EINTR


def test_a_signal_handler_that_writes_cannot_deadlock_the_hook(cases_program):
    (returncode, _, err), events, observer = same_with_and_without(cases_program, "signal_handler")
    assert returncode == 0 and err == b"main loop failures 0, handler failures 0, handler wrote: yes\n"
    # Every write the hooked run made was recorded or counted: main loop and handler alike.
    moves = [e.raw for e in events]
    assert moves.count(b"paper 0 0\n") == 300_000 and b"rock 0 0\n" in moves
    assert observer.counters.lost == 0


def test_fork_vfork_and_exec_children(cases_program):
    (returncode, out, _), events, observer = same_with_and_without(cases_program, "fork")
    assert returncode == 0
    assert out == b"parent-before\nfork-child\nvfork-child\nexec-child\nparent-after\nexec-same-pid\n"
    # Findings: a fork()ed child is another process and does not record, nor does a program it
    # execs; a vfork() child shares the target's memory, so it records into the target's ring,
    # under the parent's thread id; a program the target execs in place (same PID) records.
    assert [e.raw for e in events] == [b"parent-before\n", b"vfork-child\n", b"parent-after\n",
                                       b"exec-same-pid\n"]
    assert len({e.tid for e in events[:3]}) == 1


def test_a_thread_cancelled_mid_write_leaves_no_half_recorded_slot(cases_program):
    (returncode, _, err), events, observer = same_with_and_without(cases_program, "thread_cancel")
    assert returncode == 0 and err == b"thread cancelled\n"
    # Its write never returned, so nothing was claimed: nothing is lost or stuck in the ring.
    assert observer.counters.lost == 0 and all(e.raw != b"scissors 0 0\n" for e in events)


def test_what_the_hook_sees_and_misses(cases_program):
    (returncode, out, _), events, observer = same_with_and_without(cases_program, "other_calls")
    assert returncode == 0 and out == b"writev 1\nfwrite\nprintf\nsyscall\nwrite\n"
    # Only libc's write() goes through the hook: writev(), pwrite(), stdio (glibc calls its
    # internal write, not the interposed symbol) and a raw syscall are missed.
    assert [e.raw for e in events] == [b"write\n"]


def test_watch_reports_a_launched_target_killed_by_a_signal(cases_program):
    result = subprocess.run([sys.executable, "-m", "bench", "watch", "--method", "preload", "--",
                             cases_program, "die_by_signal"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "target killed by SIGSEGV" in result.stdout
    assert "ERROR: the launched target target killed by SIGSEGV" not in result.stderr
    assert result.stderr.strip().endswith("ERROR: the launched target was killed by SIGSEGV")
    assert "0 lost (ring counter)" in result.stdout and "kernel" not in result.stdout
