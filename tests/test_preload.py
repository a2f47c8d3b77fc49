"""The LD_PRELOAD backend: exact on the libc path, honest findings elsewhere, no leftovers."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from bench.run.runner import execute
from bench.run.targets import Workload
from methods import preload
from methods.base import ObserverUnavailable
from methods._kernel.preload_ring import HOOK_LIBRARY, SEGMENT_GLOB, c_layout, python_layout
from methods.preload import PreloadObserver
from tests.conftest import OPPONENT_CGO

pytestmark = pytest.mark.skipif(not HOOK_LIBRARY.exists(), reason="hook not built (make build)")


def our_segments() -> set[str]:
    return set(glob.glob(SEGMENT_GLOB))


@pytest.fixture(autouse=True)
def no_segment_left_behind():
    before = our_segments()
    yield
    assert our_segments() - before == set()


def test_python_mirror_matches_the_c_layout():
    assert python_layout() == c_layout()


@pytest.mark.parametrize("goroutines", [1, 8])
def test_libc_path_is_captured_exactly(goroutines):
    execution = execute("preload", {}, Workload("libc", 100_000, goroutines=goroutines))
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (100_000, 0, 0, True)
    assert execution.not_applicable is None and execution.lost_reported == 0
    assert execution.truth.report["self_check_start"]["ld_preload"] == str(HOOK_LIBRARY)


@pytest.mark.parametrize("stamp", ["TSC", "clock_gettime"])
def test_the_hook_stamps_every_write_just_after_the_opponent_did(stamp, monkeypatch):
    """The hook's stamp, converted from the TSC or read from CLOCK_MONOTONIC, lands on the
    opponent's clock: after the opponent's own stamp of the same move, and close to it."""
    if stamp == "TSC":
        reason = preload.tsc_unusable_reason()
        if reason:
            pytest.skip(f"the hook cannot stamp with the TSC here: {reason}")
    else:
        monkeypatch.setattr(preload, "tsc_unusable_reason", lambda: "turned off by the test")
    execution = execute("preload", {}, Workload("libc", 200_000, stamp_every=1))
    assert execution.verdict.exact
    assert execution.mechanism["preload"]["stamp"].startswith(stamp)
    index = np.array([i for i, _, _ in execution.verdict.stamped])
    # (received - opponent's stamp) - (received - hook's stamp), move by move
    hook_after_opponent_ns = execution.latencies_ns - execution.mechanism_latencies_ns[index]
    assert index.size == 200_000
    assert hook_after_opponent_ns.min() > -100, "a hook stamp before the opponent's"
    # The gap is Go's call into libc's write() (~100 ns here): a clock pair off by the
    # microsecond a cold first clock read takes showed as a 600-900 ns median.
    assert np.median(hook_after_opponent_ns) < 400


def test_adaptive_wakeups_wake_the_consumer_at_each_sleep():
    """With a one-second timeout, a consumer that only woke at its timeout would hold moves
    for up to a second: the hook's futex wake brings each within milliseconds."""
    execution = execute("preload", {"wakeup": "adaptive", "poll_ms": 1000},
                        Workload("libc", 10_000, rate=20_000, goroutines=2, stamp_every=1))
    assert execution.verdict.exact
    # Woken, not timed out: far below the one-second timeout, however busy the machine.
    assert np.percentile(execution.latencies_ns, 99) < 500_000_000
    assert execution.mechanism["preload"]["missed_wakeups"] == 0


def test_static_binary_is_reported_not_applicable():
    execution = execute("preload", {}, Workload("go", 1000))
    assert execution.not_applicable == "static binary: LD_PRELOAD not applied"
    assert execution.verdict.captured == 0 and execution.mechanism["preload"]["hook_loaded"] is False


def test_raw_syscall_path_is_reported_not_applicable(tmp_path):
    # The cgo build writing through Go's os.Stdout: the hook is loaded and sees nothing.
    with PreloadObserver() as observer:
        process = observer.launch([str(OPPONENT_CGO), "-moves", "500", "-io", "go"])
        observer.release()
        assert list(observer.events()) == []
        assert process.wait() == 0
        assert observer.hook_loaded
        assert observer.not_applicable(500) == "0 of 500 writes to the watched descriptor passed through libc write()"


def test_run_reports_the_finding_and_does_not_fail(tmp_path):
    out = tmp_path / "r.json"
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "preload", "--target", "go",
                             "--moves", "1000", "--repeats", "1", "--json", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "n/a: static binary: LD_PRELOAD not applied" in result.stdout
    import json
    (row,) = json.loads(out.read_text())["runs"]
    assert row["not_applicable"] == "static binary: LD_PRELOAD not applied" and row["exact"] is None


def test_a_full_ring_counts_its_losses():
    # 8 slots and a consumer that only reads after the target is gone: almost all are lost,
    # every one is counted, and the run is not called exact.
    with PreloadObserver(ring_slots=8) as observer:
        process = observer.launch([str(OPPONENT_CGO), "-moves", "1000", "-io", "libc"])
        observer.release()
        process.wait()
        captured = len(list(observer.events()))
    assert captured == 8
    assert observer.counters.lost == 992
    assert observer.hook_writes_seen == 1000


def test_attach_is_refused_with_the_reason():
    with PreloadObserver() as observer:
        with pytest.raises(ObserverUnavailable, match="only at launch"):
            observer.attach(os.getpid())


def ring_mappings(pid: int) -> list[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return [line for line in maps if "tapbench-ring" in line]


def ring_descriptors(pid: int) -> list[str]:
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "tapbench-ring" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                found.append(fd)
        except FileNotFoundError:
            pass
    return found


def test_the_ring_has_no_name_and_nothing_is_left_when_the_target_crashes():
    before = our_segments()
    with PreloadObserver() as observer:
        process = observer.launch([str(OPPONENT_CGO), "-moves", "100000000", "-io", "libc",
                                   "-rate", "1000"])
        observer.release()
        events = observer.events()
        next(events)  # the hook has mapped the ring
        assert our_segments() == before  # nothing in /dev/shm: an anonymous memfd
        assert len(ring_mappings(process.pid)) == 1  # mapped once, by the hook
        assert len(ring_descriptors(process.pid)) == 1  # kept open for an exec in place
        process.kill()  # the target dies mid-run
        list(events)  # the observer ends cleanly on the target's death
    assert ring_mappings(os.getpid()) == [] and ring_descriptors(os.getpid()) == []


HOOK_CHECK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
results = []
for fd, data in [(1, b"rock 0 0\n"), (987, b"paper 0 1\n"), (1, b"")]:
    ctypes.set_errno(0)
    returned = libc.write(fd, data, len(data))
    results.append((returned, ctypes.get_errno()))
os.close(1)
ctypes.set_errno(0)
returned = libc.write(1, b"rock 0 2\n", 9)
results.append((returned, ctypes.get_errno()))
sys.stderr.write(repr(results))
"""


def test_write_returns_and_errno_are_unchanged_by_the_hook():
    def run(env):
        return subprocess.run([sys.executable, "-c", HOOK_CHECK], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, check=True).stderr
    plain = run(dict(os.environ))
    with PreloadObserver() as observer:
        observer.launch([sys.executable, "-c", HOOK_CHECK], stderr=subprocess.PIPE)
        observer.release()
        hooked_events = list(observer.events())
        hooked = observer.process.stderr.read().decode()
        observer.process.wait()
    assert hooked == plain
    assert eval(plain) == [(9, 0), (-1, 9), (0, 0), (-1, 9)]  # EBADF = 9 for both bad fds
    # The write to the closed fd 1 failed: counted, not recorded (it wrote nothing).
    assert [e.raw for e in hooked_events] == [b"rock 0 0\n", b""] and observer.failed_writes == 1
