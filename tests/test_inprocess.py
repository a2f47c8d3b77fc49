"""The in-process exhaustive hooks (zpoline, SUD) make the system calls that cannot return
through their own frame themselves: a signal handler's return, a thread, a fork, posix_spawn;
SUD keeps SIGSYS its own and unblocked. A program doing each (tests/special_calls.c) must
print the same watched as unwatched, and only its own three moves are events of its PID."""
import subprocess

import pytest

from methods.sud import SudObserver
from methods.zpoline import ZpolineObserver
from tests.conftest import run_watched

EXPECTED = (b"handled 10 and 31 (read back: ours, SIGSYS blocked: 1), thread 0 wrote 10, fork exit 7, "
            b"spawn 0 exit 5, getpid same\n")


@pytest.mark.parametrize("observer_class", [ZpolineObserver, SudObserver], ids=["zpoline", "sud"])
def test_signal_returns_threads_forks_and_spawns_behave_the_same_watched(observer_class, special_calls_program):
    reason = observer_class.unavailable_reason()
    if reason:
        pytest.skip(f"{observer_class.method} unavailable: {reason}")
    plain = subprocess.run([special_calls_program], capture_output=True, timeout=60)
    assert (plain.returncode, plain.stderr) == (0, EXPECTED)
    with observer_class() as observer:
        watched, events = run_watched(observer, [special_calls_program])
        pid = observer.pid
        assert observer.facts()["hook"] == observer.hook_states[1]
    assert watched == (plain.returncode, plain.stdout, plain.stderr)
    # the thread's write is the process's; the forked and spawned children record nothing
    assert [(e.pid, e.raw) for e in events] == [(pid, b"rock 0 0\n"), (pid, b"paper 0 1\n"), (pid, b"scissors 0 2\n")]
    assert len({e.tid for e in events}) == 2
