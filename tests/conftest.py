import os
import signal
import subprocess
import time

import psutil
import pytest

from methods._kernel.bpf_system import loaded_bpf_program_ids  # noqa: F401  (used by the tests)
from bench.run.targets import BIN_DIR, OPPONENT_NAME, ROOT
from methods.ebpf import EbpfObserver

OPPONENT = BIN_DIR / OPPONENT_NAME
OPPONENT_CGO = BIN_DIR / (OPPONENT_NAME + "-cgo")

ebpf_reason = EbpfObserver.unavailable_reason()
needs_ebpf = pytest.mark.skipif(ebpf_reason is not None, reason=f"eBPF unavailable: {ebpf_reason}")


@pytest.fixture(scope="session", autouse=True)
def opponent_built():
    if not OPPONENT.exists() or not OPPONENT_CGO.exists():
        pytest.exit("the Go opponent is not built: run `make build` (or `sudo make test`)", 2)


def own_bpf_programs() -> set[int]:
    """Descriptors of this process that hold a BPF program: one left open keeps it loaded."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-prog":
                held.add(int(fd))
        except OSError:
            pass  # the listing's own descriptor, or one closed meanwhile
    return held


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """After every test, however it ended (a timeout included: pytest-timeout's signal method
    raises inside the test, so every `with` and fixture unwinds first): no process of the test
    is left running or stopped, no BPF program is held, vm.mmap_min_addr is back. What was left
    is removed, then the test fails naming it, so that a leak is fixed where it is, not hidden."""
    from methods.zpoline import ZpolineObserver

    programs_before = own_bpf_programs()
    yield
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            state, name = child.status(), child.name()
            child.send_signal(signal.SIGKILL)  # a stopped process dies of SIGKILL too
            child.wait(timeout=10)  # (a zombie is only reaped here: it ran no more)
            if state != psutil.STATUS_ZOMBIE:
                left.append(f"process {child.pid} ({name}, {state})")
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:  # still there after SIGKILL: named, and the others still killed
            left.append(f"process {child.pid} ({name}, {state}), not gone 10 s after SIGKILL")
    left += ZpolineObserver.clean_leftovers()
    left += [f"a BPF program held by descriptor {fd}" for fd in sorted(own_bpf_programs() - programs_before)]
    if left:
        pytest.fail(f"left behind: {'; '.join(left)} (removed)", pytrace=False)


def wait_for_state(pid: int, states: str = "T", timeout_s: float = 60.0) -> str:
    """Until the process is in one of the states (/proc/PID/stat's letter; T: stopped by a
    signal), so that a signal meant for that state is never sent before it: its state then."""
    deadline = time.monotonic() + timeout_s
    while True:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in states or time.monotonic() > deadline:
            assert state in states, f"PID {pid} is in state {state}, not {states}, after {timeout_s:.0f} s"
            return state
        time.sleep(0.005)


@pytest.fixture
def running_opponent(tmp_path):
    """Start opponents waiting for SIGUSR1; kill whatever is left at the end."""
    started = []

    def start(*flags, name=OPPONENT, env=None):
        report = tmp_path / f"truth-{len(started)}.json"
        process = subprocess.Popen([str(name), "-start", "usr1", "-report", str(report), *flags],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=None if env is None else os.environ | env)
        # The opponent says it waits only once its SIGUSR1 handler is installed.
        assert b"waiting for SIGUSR1" in process.stderr.readline()
        started.append(process)
        return process, report

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def wait_until_unloaded(program_ids: set[int], timeout_s: float = 5.0) -> set[int]:
    """The kernel frees a closed program after an RCU grace period: give it that long."""
    deadline = time.monotonic() + timeout_s
    while (still := program_ids & loaded_bpf_program_ids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return still


def run_watched(observer, argv: list[str]) -> tuple[tuple[int, bytes, bytes], list]:
    """Launch argv under an open observer with stdout and stderr piped, take every event, and
    return (exit status, stdout, stderr) and the events. The pipes are read once the program has
    ended, as a plain run's are: programs that fill them on purpose must find them full."""
    process = observer.launch(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    observer.release()
    events = list(observer.events())
    returncode = process.wait(timeout=60)
    outcome = (returncode, process.stdout.read(), process.stderr.read())
    process.stdout.close()
    process.stderr.close()
    return outcome, events


@pytest.fixture(scope="session")
def special_calls_program(tmp_path_factory):
    """tests/special_calls.c built: the system calls the in-process hooks make specially."""
    program = tmp_path_factory.mktemp("special-calls") / "special_calls"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-pthread", "-o", str(program),
                    str(ROOT / "tests" / "special_calls.c")], check=True)
    return str(program)
