"""The Go opponent's flags, gate, pacing and self-check behave as documented."""
import glob
import json
import os
import signal
import statistics
import subprocess
import time

import pytest

from bench.run.truth import Truth
from tests.conftest import OPPONENT, OPPONENT_CGO


def opponent(*flags, binary=OPPONENT, **kwargs):
    return subprocess.run([str(binary), *flags], capture_output=True, **kwargs)


@pytest.mark.parametrize("flags,message", [
    (["-io", "libc"], b"needs the cgo build"),
    (["-io", "pipe"], b"-io must be go or libc"),
    (["-goroutines", "0"], b"-goroutines must be between 1"),
    (["-rate", "-5"], b"-rate must be between 0"),
    (["-start", "later"], b"-start must be now, stdin or usr1"),
    (["extra"], b"unexpected argument"),
])
def test_bad_flags_get_one_clear_error(flags, message):
    result = opponent(*flags)
    assert result.returncode == 2
    assert result.stdout == b""
    assert message in result.stderr and result.stderr.startswith(b"ERROR: ")


def test_libc_path_works_in_the_cgo_build(tmp_path):
    report = tmp_path / "truth.json"
    result = opponent("-io", "libc", "-moves", "100", "-report", str(report), binary=OPPONENT_CGO)
    assert result.returncode == 0 and result.stdout.count(b"\n") == 100
    truth = Truth.load(str(report))
    truth.check()
    assert truth.report["io"] == "libc"
    assert any("libc.so.6" in lib for lib in truth.report["self_check_start"]["libraries"])


def test_paced_run_keeps_a_deadline_schedule(tmp_path):
    report = tmp_path / "truth.json"
    opponent("-moves", "200", "-rate", "1000", "-report", str(report), check=True)
    truth = json.loads(report.read_text())
    # 200 moves at 1000/s: the last is due at 199 ms; a deadline schedule cannot finish sooner.
    assert truth["wall_ns"] >= 199e6
    assert truth["writers"][0]["lag_end_ns"] >= 0


@pytest.mark.parametrize("goroutines", [1, 4])
def test_a_paced_run_writes_evenly_not_in_bursts(tmp_path, goroutines):
    """At 20,000 moves/s a move is due every 50 µs. A millisecond timer (Go's own time.Sleep
    here) wrote bursts of ~20 moves 0.4 µs apart every 1.1 ms: a median gap of 0.4 µs."""
    report = tmp_path / "truth.json"
    opponent("-moves", "4000", "-rate", "20000", "-goroutines", str(goroutines), "-stamp-every", "1",
             "-report", str(report), check=True)
    truth = json.loads(report.read_text())
    stamps = sorted(stamp for writer in truth["writers"] for stamp in writer["stamps_ns"])
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    assert len(gaps) == 3999
    assert 25_000 <= statistics.median(gaps) <= 75_000


def reading_stdin(pid: int) -> bool:
    """Whether a thread of pid is blocked in read() on descriptor 0 (/proc/PID/task/*/syscall)."""
    for task in glob.glob(f"/proc/{pid}/task/*/syscall"):
        try:
            with open(task) as f:
                if f.read().split()[:2] == ["0", "0x0"]:
                    return True
        except OSError:
            continue  # the thread ended
    return False


def test_stdin_gate_waits_for_the_go_signal(tmp_path):
    report = tmp_path / "truth.json"
    process = subprocess.Popen([str(OPPONENT), "-start", "stdin", "-moves", "10", "-report", str(report)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # the state itself: it sits in its gate's read of stdin, having written nothing
    deadline = time.monotonic() + 60
    while not reading_stdin(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reading_stdin(process.pid) and process.poll() is None and not report.exists()
    out, _ = process.communicate(b"g")
    assert out.count(b"\n") == 10 and process.returncode == 0


def test_usr1_gate_and_self_check_report_the_environment(tmp_path):
    report = tmp_path / "truth.json"
    env = dict(os.environ, LD_PRELOAD="")
    process = subprocess.Popen([str(OPPONENT), "-start", "usr1", "-moves", "5", "-report", str(report)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert b"waiting for SIGUSR1" in process.stderr.readline()
    process.send_signal(signal.SIGUSR1)
    assert process.wait(timeout=10) == 0
    check = json.loads(report.read_text())["self_check_end"]
    assert check.pop("cpus_allowed") == open("/proc/self/status").read().split("Cpus_allowed_list:")[1].split()[0]
    assert check.pop("uid") == os.getuid()
    assert check == {"tracer_pid": 0, "seccomp": 0, "no_new_privs": 0, "ld_preload": "", "libraries": [],
                     "unexpected_libraries": [], "page_zero_mapped": False, "text_bytes_changed": 0,
                     "observer_visible": False}


def test_self_check_sees_ld_preload(tmp_path):
    report = tmp_path / "truth.json"
    env = dict(os.environ, LD_PRELOAD="/nonexistent/hook.so")
    opponent("-moves", "1", "-report", str(report), binary=OPPONENT_CGO, env=env, check=True)
    check = json.loads(report.read_text())["self_check_start"]
    assert check["ld_preload"] == "/nonexistent/hook.so" and check["observer_visible"]


def test_stamps_are_taken_before_the_stamped_writes_without_a_system_call(tmp_path):
    report = tmp_path / "truth.json"
    opponent("-moves", "1000", "-goroutines", "2", "-stamp-every", "100", "-report", str(report), check=True)
    truth = json.loads(report.read_text())
    assert truth["stamp_every"] == 100
    for writer in truth["writers"]:
        stamps = writer["stamps_ns"]
        assert len(stamps) == 5 and stamps == sorted(stamps)  # moves 0, 100, ... 400 of 500
        assert truth["start_mono_ns"] <= stamps[0] and stamps[-1] <= truth["end_mono_ns"]
    # The stamp is the vDSO's clock: strace sees no clock_gettime system call while it writes.
    traced = subprocess.run(["strace", "-f", "-qq", "-e", "trace=clock_gettime", str(OPPONENT), "-moves", "100",
                             "-stamp-every", "1"], capture_output=True, text=True)
    assert traced.returncode == 0 and "clock_gettime" not in traced.stderr
