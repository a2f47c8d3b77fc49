"""The ptrace backend and the strace peer against the real Go opponent."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.run.runner import execute
from bench.run.targets import Workload
from bench.run.truth import Truth
from bench.run.verify import verify
from bench.run.placement import split_applicable
from methods.base import ObserverError, ObserverUnavailable
from methods.ptrace import PtraceObserver
from methods._kernel.tracing import stopped_processes

ptrace_reason = PtraceObserver.unavailable_reason()
pytestmark = pytest.mark.skipif(ptrace_reason is not None, reason=f"ptrace unavailable: {ptrace_reason}")


def release(process):
    # Not process.send_signal: Popen polls its child first, and that waitpid would swallow a
    # ptrace stop meant for the tracer running in this same test process.
    os.kill(process.pid, signal.SIGUSR1)


def thread_states(pid: int) -> dict[int, str]:
    """State letter of every thread of pid (T = stopped, t = tracing stop)."""
    states = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                states[int(tid)] = next(l.split()[1] for l in f if l.startswith("State:"))
        except (OSError, StopIteration):
            pass
    return states


def assert_exact(execution, expected):
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (expected, 0, 0, True)


@pytest.mark.parametrize("strategy", ["seccomp", "step"])
def test_launch_captures_100k_moves_exactly(strategy):
    execution = execute("ptrace", {"strategy": strategy}, Workload("go", 100_000))
    assert_exact(execution, 100_000)
    assert execution.truth.report["self_check_start"]["tracer_pid"] == os.getpid()


@pytest.mark.parametrize("strategy", ["seccomp", "step"])
def test_launch_follows_8_goroutines_on_several_threads(strategy):
    execution = execute("ptrace", {"strategy": strategy}, Workload("go", 100_000, goroutines=8))
    assert_exact(execution, 100_000)
    assert execution.verdict.per_writer_captured == [12_500] * 8
    assert execution.truth.report["gomaxprocs"] >= 2


def test_the_seccomp_filter_stops_the_target_only_for_writes_to_stdout():
    execution = execute("ptrace", {}, Workload("go", 20_000, noise=100))
    assert_exact(execution, 20_000)
    report = execution.truth.report
    assert report["noise_writes_other_fd"] > 0 and report["noise_writes_stdout"] > 0
    assert execution.mechanism["ptrace"]["seccomp_stops"] == 20_000 + report["noise_writes_stdout"]


@pytest.mark.skipif(not split_applicable(), reason="split placement needs two CPUs")
@pytest.mark.parametrize("goroutines", [1, 8])
def test_a_spinning_tracer_in_split_placement_is_exact_and_catches_stops_awake(goroutines):
    execution = execute("ptrace", {"spin_us": 100}, Workload("go", 20_000, goroutines=goroutines,
                                                             placement="split"))
    assert_exact(execution, 20_000)
    # How many stops the spin caught is the scheduler's to decide (a benchmark's figure, in the
    # sweep's facts); that they are counted is the code's.
    assert execution.mechanism["ptrace"]["stops_caught_spinning"] >= 0


@pytest.mark.parametrize("placement", ["shared", "free"])
def test_spinning_on_the_target_s_cpu_is_refused_before_the_target_runs(placement):
    with pytest.raises(ObserverError, match="--placement split"):
        execute("ptrace", {"spin_us": 100}, Workload("go", 1000, placement=placement))
    assert not stopped_processes()


@pytest.mark.parametrize("strategy", ["seccomp", "step"])
def test_a_bad_pointer_is_read_as_an_empty_head_and_the_write_still_fails(strategy, tmp_path):
    """The tracer reads the buffer itself (from /proc/PID/mem): an unmapped one gives it
    nothing, and the target's write fails with EFAULT as it would untraced."""
    program = tmp_path / "hook_cases"
    subprocess.run(["gcc", "-O2", "-o", str(program), "tests/hook_cases.c", "-lpthread"], check=True)
    with PtraceObserver(strategy=strategy) as observer:
        # a pipe, not /dev/null, whose write() never reads the buffer
        process = observer.launch([str(program), "bad_pointer"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        observer.release()
        heads = [event.raw for event in observer.events()]
        output, errors = process.stdout.read(), process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert heads == [b"", b"", b"rock 0 0\n"]
    assert output == b"rock 0 0\n" and errors.count(b"Bad address") == 2 and process.returncode == 0
    assert not stopped_processes()


def test_the_target_s_cpu_time_is_the_reaped_usage_not_its_own_report():
    """The tracer reaps the target itself; its whole usage (exit included) is what reaping it
    added to our children's: at least what the opponent reported just before it exited."""
    execution = execute("ptrace", {}, Workload("go", 20_000))
    reported = execution.truth.report["cpu_ns"]
    assert reported <= execution.target_cpu_ns <= reported + 50_000_000


def test_libc_target_is_exact():
    assert_exact(execute("ptrace", {}, Workload("libc", 20_000)), 20_000)


def test_seccomp_cannot_attach_and_says_so(running_opponent):
    process, _ = running_opponent("-moves", "1")
    with pytest.raises(ObserverUnavailable, match="--strategy step"):
        with PtraceObserver(strategy="seccomp") as observer:
            observer.attach(process.pid)


def test_attach_seizes_every_thread_including_later_ones(running_opponent):
    # 8 goroutines with GOMAXPROCS=8: the Go runtime starts more OS threads once the moves
    # begin, after the attach, so moves written from them are seen only if clones are followed.
    process, report = running_opponent("-moves", "40000", "-goroutines", "8",
                                       env={"GOMAXPROCS": "8"})
    threads_before = set(thread_states(process.pid))
    with PtraceObserver(strategy="step") as observer:
        observer.attach(process.pid)
        assert threads_before <= observer.threads.keys()  # the runtime may start one more meanwhile
        threads_at_attach = set(observer.threads)
        release(process)
        events = list(observer.events())
    assert process.wait(timeout=30) == 0
    truth = Truth.load(str(report))
    verdict = verify(((e.pid, e.raw) for e in events), truth.seed, truth.counts, process.pid)
    assert verdict.exact and verdict.captured == 40_000
    assert {e.tid for e in events} - threads_at_attach, "no move came from a thread born after attach"


def test_stop_detaches_and_the_opponent_finishes_unharmed(running_opponent):
    process, report = running_opponent("-moves", "3000", "-rate", "1000", "-goroutines", "4")
    with PtraceObserver(strategy="step") as observer:
        observer.attach(process.pid)
        release(process)
        seen = 0
        for event in observer.events():
            seen += 1
            if seen == 500:
                observer.stop()
        assert observer.threads == {}
    states = thread_states(process.pid)
    assert states and not set(states.values()) & {"t", "T"}, states
    assert process.wait(timeout=30) == 0
    truth = json.loads(report.read_text())
    assert truth["written"] == 3000
    assert truth["self_check_start"]["tracer_pid"] != 0
    assert truth["self_check_end"]["tracer_pid"] == 0


def settled_states(pid: int, timeout_s: float = 60.0) -> dict:
    """The threads' states once none is stopped any more, or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    while set((states := thread_states(pid)).values()) & {"t", "T"} and time.monotonic() < deadline:
        time.sleep(0.02)
    return states


def wait_until_watching(watcher: subprocess.Popen) -> None:
    """Until `tapbench watch` says it watches (attached, the target released)."""
    while not (line := watcher.stderr.readline()).startswith("watching PID"):
        assert line, "the watch ended before it watched"


def test_an_exception_in_the_consumer_detaches_every_thread(running_opponent):
    process, _ = running_opponent("-moves", "100000", "-rate", "5000", "-goroutines", "4")
    with pytest.raises(RuntimeError):
        with PtraceObserver(strategy="step") as observer:
            observer.attach(process.pid)
            release(process)
            for _ in observer.events():
                raise RuntimeError("consumer failed")
    states = settled_states(process.pid)
    assert states and not set(states.values()) & {"t", "T"}, states
    with open(f"/proc/{process.pid}/status") as f:
        assert "TracerPid:\t0\n" in f.read()


@pytest.mark.parametrize("exitkill,survives", [(False, True), (True, False)])
def test_what_happens_to_the_opponent_when_the_tracer_is_killed(running_opponent, exitkill, survives):
    process, _ = running_opponent("-moves", "100000", "-rate", "2000")
    argv = [sys.executable, "-m", "bench", "watch", "--method", "ptrace", "--strategy", "step",
            "--pid", str(process.pid)] + (["--exitkill"] if exitkill else [])
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    process.send_signal(signal.SIGUSR1)
    assert watcher.stdout.readline().startswith(b"[")  # it is watching
    watcher.kill()
    watcher.wait()
    deadline = time.monotonic() + 60  # the kernel kills an EXITKILL tracee as the tracer exits
    while (process.poll() is None) != survives and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (process.poll() is None) == survives
    if survives:
        assert not set(thread_states(process.pid).values()) & {"t", "T"}


def test_ctrl_c_ends_a_watch_of_an_idle_target_and_leaves_it_running(running_opponent):
    process, _ = running_opponent("-moves", "10")  # waits for SIGUSR1: writes nothing
    watcher = subprocess.Popen([sys.executable, "-m", "bench", "watch", "--method", "ptrace",
                                "--strategy", "step", "--pid", str(process.pid)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_watching(watcher)  # attached and idle
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=20)
    finally:
        watcher.kill()  # a watcher that did not stop must not stay attached
        watcher.wait()
    assert watcher.returncode == 0, err
    assert "0 moves" in out and "(stopped)" in out
    states = thread_states(process.pid)
    assert states and not set(states.values()) & {"t", "T"}, states
    release(process)
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("options", [{}, {"seccomp_bpf": True}])
def test_strace_peer_is_verified_exact(options):
    assert_exact(execute("strace", options, Workload("go", 20_000, goroutines=4)), 20_000)
