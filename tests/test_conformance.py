"""The backend contract, checked for every registered backend: a new technique that passes
these is usable by every command, table and probe of tapbench.

Each backend must launch, capture exactly on every target it says it sees, end with a finding
(not a failed capture) on a target it does not see, attach if it says it can (and refuse with
its stated reason if not), stop cleanly with nothing left behind, and refuse bad options with
one ERROR line. The per-backend test files keep their specific checks.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from bench.run.results import RESULTS_FORMAT
from bench.run.runner import execute
from bench.run.targets import ROOT, TARGETS, Workload
from bench.run.truth import Truth
from bench.run.verify import verify
from methods import REGISTRY
from methods.base import ObserverUnavailable
from methods.protocol import LOSS_SOURCES

OBSERVERS = sorted(name for name, cls in REGISTRY.items() if not cls.baseline)
# Paced, so that every peer keeps up; two writers, long enough to cross several batches of
# every consumer.
WORKLOAD_MOVES, WORKLOAD_RATE = 3000, 10_000


def available(method: str) -> None:
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable here: {reason}")


def tapbench(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def defaults(method: str) -> dict:
    return {name: spec.get("default") for name, spec in REGISTRY[method].cli_options.items()}


def child_processes() -> set[int]:
    """Our child processes, but for multiprocessing's resource tracker: the first shared-memory
    segment starts it, and it lives as long as this process, by design."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())}


def test_exactly_one_baseline_and_every_declaration_is_well_formed():
    assert [name for name, cls in REGISTRY.items() if cls.baseline] == ["none"]
    for name, cls in REGISTRY.items():
        described = cls.describe()
        json.dumps(described)  # it goes into every results file as it is
        assert described["targets"] and set(described["targets"]) <= set(TARGETS), name
        assert described["loss_source"] in (None, *LOSS_SOURCES), name
        assert described["description"], f"{name} has no description"
        assert described["can_attach"] or described["attach_unavailable"], f"{name}: say why not"
        assert described["dependence"] or cls.baseline, f"{name} declares no dependence"
        for claim in described["claims"]:
            assert claim["aspect"] in ("overhead_ns", "ceiling_per_s", "intrusiveness", "privileges",
                                       "kernel_dependence"), (name, claim)
            assert set(claim["when"]) <= set(cls.cli_options), f"{name}: a claim names an unknown option"


@pytest.mark.parametrize("method,target", [(m, t) for m in OBSERVERS for t in REGISTRY[m].targets])
def test_launch_captures_exactly_on_a_target_it_sees(method, target):
    available(method)
    execution = execute(method, defaults(method), Workload(target, WORKLOAD_MOVES, rate=WORKLOAD_RATE,
                                                           goroutines=2))
    verdict = execution.verdict
    assert execution.not_applicable is None
    assert (verdict.captured, verdict.lost, verdict.phantom) == (WORKLOAD_MOVES, 0, 0), verdict
    # A reference peer's order is its own finding (bpftrace's per-CPU perf buffers reorder
    # writes from different CPUs), reported by the sweep; ours must keep every writer's order.
    assert verdict.in_order or REGISTRY[method].reference_peer, verdict
    assert execution.mechanism["captured_reported"] >= WORKLOAD_MOVES
    assert method in execution.mechanism  # its own facts, under its own name


@pytest.mark.parametrize("method,target", [(m, t) for m in OBSERVERS for t in TARGETS
                                           if t not in REGISTRY[m].targets])
def test_a_target_it_cannot_see_is_a_finding_not_a_failure(method, target, tmp_path):
    available(method)
    out = tmp_path / "run.json"
    result = tapbench("run", "--method", method, "--target", target, "--moves", "500", "--repeats", "1",
                      "--json", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["runs"]
    assert row["not_applicable"] and row["exact"] is None and row["captured"] == 0
    assert f"n/a: {row['not_applicable']}" in result.stdout


@pytest.mark.parametrize("method", OBSERVERS)
def test_attach_works_if_declared_and_is_refused_with_the_reason_if_not(method, running_opponent):
    available(method)
    cls = REGISTRY[method]
    process, report = running_opponent("-moves", "2000", "-goroutines", "2")
    if not cls.can_attach:
        with pytest.raises(ObserverUnavailable) as refused:
            with cls(**defaults(method)) as observer:
                observer.attach(process.pid)
        assert str(refused.value) == cls.describe()["attach_unavailable"]
        return
    options = defaults(method) | ({"strategy": "step"} if "strategy" in cls.cli_options else {})
    with cls(**options) as observer:
        observer.attach(process.pid)
        os.kill(process.pid, signal.SIGUSR1)  # the opponent starts only once it is watched
        events = list(observer.events())
    assert process.wait(timeout=30) == 0
    truth = Truth.load(str(report))
    verdict = verify(((e.pid, e.raw) for e in events), truth.seed, truth.counts, process.pid)
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.not_a_move) == (2000, 0, 0, 0), verdict
    assert verdict.in_order or cls.reference_peer, verdict  # as in the launch test above


@pytest.mark.parametrize("method", OBSERVERS)
def test_stop_ends_cleanly_and_leaves_nothing_behind(method):
    available(method)
    cls = REGISTRY[method]
    leftovers_before, children_before = cls.leftovers(), child_processes()
    argv = Workload(cls.targets[0], 100_000_000, rate=2000).argv("/dev/null")
    with cls(**defaults(method)) as observer:
        process = observer.launch(argv)
        observer.release()
        seen = 0
        for _ in observer.events():
            seen += 1
            if seen == 20:
                observer.stop()
        assert seen >= 20
    assert process.poll() is not None  # a launched target does not outlive the observation
    deadline = time.monotonic() + 5  # BPF programs go after an RCU grace period
    while cls.leftovers() - leftovers_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cls.leftovers() - leftovers_before == set()
    assert child_processes() - children_before == set()


def bad_values(method: str) -> list[tuple[str, str]]:
    """(flag, value) pairs the backend must refuse: an unknown flag, and for each option that
    takes a value, one outside what it accepts."""
    cases = [("--no-such-option", "1")]
    for name, spec in REGISTRY[method].cli_options.items():
        if spec.get("flag"):
            continue
        # -1: no count, size, period or time any option takes is negative (0 can be: --spin-us 0)
        cases.append((f"--{name.replace('_', '-')}", "no-such-choice" if "choices" in spec else "-1"))
    return cases


@pytest.mark.parametrize("method,flag,value", [(m, *case) for m in OBSERVERS for case in bad_values(m)])
def test_a_bad_option_is_one_error_line(method, flag, value):
    result = tapbench("run", "--method", method, flag, value, "--moves", "10", "--repeats", "1")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "Traceback" not in result.stderr


@pytest.mark.parametrize("method", OBSERVERS)
def test_ebpf_flag_prints_the_program_it_would_load_or_says_it_has_none(method):
    result = tapbench("watch", "--method", method, "--pid", "4242", "--ebpf")
    if REGISTRY[method].describe()["has_program"]:
        assert result.returncode == 0 and "4242" in result.stdout, result.stderr
    else:
        assert result.returncode == 2 and f"{method} loads no program" in result.stderr


PROBE_MODULE = ROOT / "methods" / "conformance_probe.py"


def test_a_new_backend_is_one_file_in_methods(tmp_path):
    """A subclass of the eBPF backend under a new name, dropped into methods/, runs through
    `tapbench run` with exact rows and is described in the results."""
    available("ebpf")
    PROBE_MODULE.write_text(textwrap.dedent('''\
        """A copy of the eBPF backend under another name: the backend-contract test's probe."""
        from methods.ebpf import EbpfObserver


        class ConformanceProbeObserver(EbpfObserver):
            method = "ebpf-probe"
            description = "the eBPF backend under another name"
        '''))
    try:
        out = tmp_path / "probe.json"
        result = tapbench("run", "--method", "ebpf-probe", "--hook", "tracepoint", "--moves", "5000",
                          "--repeats", "1", "--json", str(out))
        assert result.returncode == 0, result.stderr
        document = json.loads(out.read_text())
        assert document["format"] == RESULTS_FORMAT
        (row,) = document["runs"]
        assert row["method"] == "ebpf-probe" and row["exact"] is True
        assert document["methods"]["ebpf-probe"]["description"] == "the eBPF backend under another name"
        assert document["methods"]["ebpf-probe"]["loss_source"] == "kernel counter"
        assert row["mechanism"][0]["ebpf-probe"]["kernel_matched"] == 5000
    finally:
        PROBE_MODULE.unlink()
