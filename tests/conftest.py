import os
import subprocess
import time

import pytest

from methods.bpf_system import loaded_bpf_program_ids  # noqa: F401  (used by the tests)
from bench.targets import BIN_DIR, OPPONENT_NAME, ROOT
from methods.ebpf import EbpfObserver

OPPONENT = BIN_DIR / OPPONENT_NAME
OPPONENT_CGO = BIN_DIR / (OPPONENT_NAME + "-cgo")

ebpf_reason = EbpfObserver.unavailable_reason()
needs_ebpf = pytest.mark.skipif(ebpf_reason is not None, reason=f"eBPF unavailable: {ebpf_reason}")


@pytest.fixture(scope="session", autouse=True)
def opponent_built():
    if not OPPONENT.exists() or not OPPONENT_CGO.exists():
        pytest.exit("the Go opponent is not built: run `make build` (or `sudo make test`)", 2)


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
