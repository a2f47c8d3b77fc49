"""Faults: a killed harness, a crashing opponent, many start/stop cycles. Nothing is left
behind, nothing is claimed that was not verified."""
import gc
import glob
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

from bench.run.truth import writer_counts
from bench.run.verify import verify
from bench.run.targets import SCRATCH_PREFIX, is_opponent
from methods import REGISTRY
from methods._kernel.preload_ring import SEGMENT_GLOB
from tests.conftest import OPPONENT, OPPONENT_CGO, loaded_bpf_program_ids, wait_until_unloaded

# (method, options, opponent, its extra flags): every backend that launches the opponent.
BACKENDS = [
    ("ebpf", {}, OPPONENT, []),
    ("ptrace", {"strategy": "seccomp"}, OPPONENT, []),
    ("ptrace", {"strategy": "step"}, OPPONENT, []),
    ("preload", {}, OPPONENT_CGO, ["-io", "libc"]),
]
IDS = ["ebpf", "ptrace-seccomp", "ptrace-step", "preload"]


def available(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")


def segments():
    return set(glob.glob(SEGMENT_GLOB))


def opponents():
    return {p.pid for p in psutil.process_iter(["name"]) if is_opponent(p.info["name"] or "")}


def opponents_of(pid: int) -> list[int]:
    """The opponents a process has started, its children's included."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if is_opponent(child.name()):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def write_calls(pid: int) -> int:
    """The write system calls a process has made so far (/proc/PID/io); 0 once it is gone."""
    try:
        return psutil.Process(pid).io_counters().write_count
    except psutil.NoSuchProcess:
        return 0


@pytest.mark.parametrize("method,options,binary,flags", BACKENDS, ids=IDS)
def test_a_sigkilled_harness_leaves_nothing_behind(method, options, binary, flags):
    available(method)
    programs_before, segments_before, opponents_before = loaded_bpf_program_ids(), segments(), opponents()
    option_flags = [f"--{k}={v}" for k, v in options.items()]
    harness = subprocess.Popen([sys.executable, "-m", "bench", "watch", "--method", method, *option_flags,
                                "--", str(binary), "-moves", "100000000", "-rate", "2000", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert harness.stdout.readline().startswith(b"[")  # it is watching
    target = (opponents() - opponents_before).pop()
    harness.kill()
    harness.wait()
    # The documented fate of a launched opponent: it dies with tapbench (PR_SET_PDEATHSIG).
    assert psutil.wait_procs([psutil.Process(target)], timeout=5)[1] == []
    assert wait_until_unloaded(loaded_bpf_program_ids() - programs_before) == set()
    deadline = time.monotonic() + 5  # Python's resource tracker removes the segment
    while segments() - segments_before and time.monotonic() < deadline:
        time.sleep(0.05)
    result = subprocess.run([sys.executable, "-m", "bench", "cleanup"], capture_output=True, text=True)
    assert result.returncode == 0
    assert segments() - segments_before == set()
    # and the next run works
    run = subprocess.run([sys.executable, "-m", "bench", "run", "--method", method, *option_flags,
                          "--target", "libc" if binary == OPPONENT_CGO else "go", "--moves", "2000",
                          "--repeats", "1"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_cleanup_removes_the_scratch_folder_of_a_killed_run_and_no_live_one(tmp_path):
    """A run killed with SIGKILL cannot remove its scratch folder; cleanup removes it once the
    run's process is gone, and leaves the folder of a process still running."""
    harness = subprocess.Popen([sys.executable, "-m", "bench", "run", "--method", "none", "--moves", "100000000",
                                "--rate", "2000", "--repeats", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not opponents_of(harness.pid) and harness.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # until the run has launched its opponent: its scratch folder is made before
    launched = [psutil.Process(pid) for pid in opponents_of(harness.pid)]
    assert launched, "the run launched no opponent"
    (scratch,) = glob.glob(f"/tmp/{SCRATCH_PREFIX}{harness.pid}-*")
    harness.kill()
    harness.wait()
    # its opponent dies with it, and is gone (reaped) before another test looks for opponents
    assert psutil.wait_procs(launched, timeout=30)[1] == []
    live = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")  # this test's own process runs on
    try:
        result = subprocess.run([sys.executable, "-m", "bench", "cleanup"], capture_output=True, text=True)
        assert result.returncode == 0
        assert f"removed {scratch}, the scratch folder of a killed run" in result.stdout
        assert not os.path.exists(scratch) and os.path.isdir(live)
    finally:
        os.rmdir(live)


@pytest.mark.parametrize("method,options,binary,flags", BACKENDS, ids=IDS)
@pytest.mark.parametrize("crash", [signal.SIGSEGV, signal.SIGKILL])
def test_a_crashing_opponent_ends_the_observation_with_a_verified_partial_capture(
        method, options, binary, flags, crash):
    available(method)
    moves = 1_000_000
    with REGISTRY[method](**options) as observer:
        process = observer.launch([str(binary), "-moves", str(moves), "-rate", "5000", *flags])
        observer.release()
        events = []
        for event in observer.events():
            events.append(event)
            if len(events) == 300:
                os.kill(observer.pid, crash)
        process.wait()
    verdict = verify(((e.pid, e.raw) for e in events), 1, writer_counts(moves, 1), observer.pid)
    assert verdict.captured >= 300 and verdict.phantom == 0 and verdict.in_order
    assert not verdict.exact  # never claimed as a complete capture


def test_run_reports_a_dead_opponent_as_a_partial_capture():
    def kill_the_opponent():
        # Once it is writing (however long the start takes on a busy machine), not after a guess.
        deadline = time.monotonic() + 120
        while not (found := opponents()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Some moves are captured first: killed once it has written 200 times (the kernel's count
        # of its write calls, each of which ptrace saw at entry), however long that takes.
        while time.monotonic() < deadline and min((write_calls(pid) for pid in found), default=0) < 200:
            time.sleep(0.05)
        for pid in found:
            os.kill(pid, signal.SIGKILL)
    killer = threading.Thread(target=kill_the_opponent)
    killer.start()
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ptrace", "--moves", "1000000",
                             "--rate", "2000", "--repeats", "1"], capture_output=True, text=True)
    killer.join()
    assert result.returncode == 1
    assert "ERROR: the opponent ended with exit status -9" in result.stderr
    assert "0 phantom, in order" in result.stderr


@pytest.mark.parametrize("method,options,binary,flags", BACKENDS, ids=IDS)
def test_100_start_stop_cycles_leak_nothing(method, options, binary, flags):
    available(method)
    cycles = 100
    me = psutil.Process()
    programs = loaded_bpf_program_ids()

    def cycle():
        with REGISTRY[method](**options) as observer:
            observer.launch([str(binary), "-moves", "20", *flags])
            observer.release()
            assert len(list(observer.events())) == 20

    # The first cycles grow the heap once (lazy imports, bcc's LLVM state, allocator arenas):
    # memory is compared over the second half, where a leak would still grow it per cycle.
    for _ in range(cycles // 2):
        cycle()
    gc.collect()
    fds, memory, shm = me.num_fds(), me.memory_info().rss, segments()
    for _ in range(cycles - cycles // 2):
        cycle()
    gc.collect()
    assert me.num_fds() == fds
    assert wait_until_unloaded(loaded_bpf_program_ids() - programs) == set()
    assert segments() == shm
    assert me.memory_info().rss - memory < 5 * 2**20  # < 100 KiB a cycle
