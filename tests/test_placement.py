"""CPU placement: the target and the observer go where the placement says, bare runs are
paired in the same placement, an attached target gets its affinity back."""
import json
import os
import signal
import subprocess
import sys

from dataclasses import replace

import numpy as np
import pytest

from bench.run.placement import USABLE_CPUS, cpus_for, observer_placed, split_applicable
from bench.document.rows import Row
from bench.run.runner import execute
from bench.run.targets import ROOT, Workload
from methods import REGISTRY, ObserverError
from methods.ebpf import EbpfObserver
from tests.conftest import needs_ebpf

needs_two_cpus = pytest.mark.skipif(not split_applicable(), reason="split placement needs two CPUs")
LAST = str(USABLE_CPUS[-1])


def allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        return next(line.split()[1] for line in status if line.startswith("Cpus_allowed_list:"))


@needs_two_cpus
def test_shared_puts_both_on_one_cpu_and_split_keeps_them_apart():
    target, observer = cpus_for("shared")
    assert target == observer and len(target) == 1
    target, observer = cpus_for("split")
    assert target and observer and not target & observer
    assert cpus_for("free") == (None, None)


@needs_two_cpus
def test_observer_placed_pins_every_thread_and_restores_them():
    before = os.sched_getaffinity(0)
    with observer_placed("split") as target_cpus:
        assert os.sched_getaffinity(0) == cpus_for("split")[1] and target_cpus == {USABLE_CPUS[-1]}
    assert os.sched_getaffinity(0) == before


@needs_two_cpus
@pytest.mark.parametrize("method", ["none", "ptrace", "unotify", "strace", "preload"])
@pytest.mark.parametrize("placement", ["shared", "split"])
def test_a_launched_target_runs_where_the_placement_says(method, placement):
    if REGISTRY[method].unavailable_reason():
        pytest.skip(REGISTRY[method].unavailable_reason())
    workload = Workload(REGISTRY[method].targets[0], 2000, placement=placement)
    execution = execute(method, {}, workload)
    # The opponent's own report of where it could run, read from /proc/self/status at start.
    assert execution.truth.report["self_check_start"]["cpus_allowed"] == LAST


@needs_two_cpus
def test_an_attached_target_is_placed_and_gets_its_affinity_back(running_opponent):
    if EbpfObserver.unavailable_reason():
        pytest.skip(EbpfObserver.unavailable_reason())
    process, _ = running_opponent("-moves", "1000", "-goroutines", "4")
    with observer_placed("split") as target_cpus, EbpfObserver() as observer:
        observer.target_cpus = target_cpus
        observer.attach(process.pid)
        # every thread of the running target moved onto the target's CPU
        assert {allowed(int(tid)) for tid in os.listdir(f"/proc/{process.pid}/task")} == {LAST}
        os.kill(process.pid, signal.SIGUSR1)
        events = list(observer.events())
    assert len(events) == 1000 and process.wait(timeout=30) == 0


@needs_two_cpus
def test_detach_restores_the_affinity_of_a_running_target(running_opponent):
    process, _ = running_opponent("-moves", "100000000", "-rate", "1000", "-goroutines", "2")
    before = {tid: allowed(int(tid)) for tid in os.listdir(f"/proc/{process.pid}/task")}
    with observer_placed("shared") as target_cpus, REGISTRY["ptrace"](strategy="step") as observer:
        observer.target_cpus = target_cpus
        observer.attach(process.pid)
        assert allowed(process.pid) == LAST
        os.kill(process.pid, signal.SIGUSR1)
        for seen, _ in enumerate(observer.events(), 1):
            if seen == 50:
                observer.stop()
    after = {tid: allowed(int(tid)) for tid in os.listdir(f"/proc/{process.pid}/task")}
    assert set(after.values()) == set(before.values())  # threads started meanwhile too


def test_placement_is_part_of_a_rows_identity():
    row = Row(method="ebpf", options={}, target="go", goroutines=1, moves=10, rate=0.0)
    assert replace(row, placement="shared").key != replace(row, placement="split").key
    assert replace(row, group="ebpf").key != replace(row, group="uprobe").key  # and so is its group


@needs_two_cpus
def test_run_places_each_method_in_its_own_default_unless_told(tmp_path):
    out = tmp_path / "run.json"
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ptrace,preload", "--target", "libc",
                             "--moves", "2000", "--repeats", "1", "--json", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = {r["method"]: r for r in json.loads(out.read_text())["runs"]}
    assert rows["ptrace"]["placement"] == "shared" and rows["preload"]["placement"] == "split"
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ptrace,preload", "--target", "libc",
                             "--placement", "free", "--moves", "2000", "--repeats", "1", "--json", str(out)],
                            capture_output=True, text=True, cwd=ROOT)
    assert {r["placement"] for r in json.loads(out.read_text())["runs"]} == {"free"}


RING_BACKENDS = [pytest.param("ebpf", "go", marks=needs_ebpf), ("preload", "libc")]


@needs_two_cpus
@pytest.mark.parametrize("method,target", RING_BACKENDS)
def test_a_ring_consumer_spinning_in_split_captures_paced_moves_exactly(method, target):
    execution = execute(method, {"wakeup": "adaptive", "spin_us": 200},
                        Workload(target, 4000, rate=20_000, placement="split"))
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, execution.lost_reported) == (4000, 0, 0, 0)
    # How many batches the spin caught is the scheduler's to decide (a benchmark's figure, in
    # the sweep's facts); that it is counted is the code's.
    assert execution.mechanism[method]["batches_caught_spinning"] >= 0


def test_a_drained_ring_is_spun_on_before_sleeping_and_a_record_found_needs_no_sleep():
    from methods.protocol import EVENT
    from methods._kernel.rings import RingConsumer

    observer = RingConsumer()  # the loop alone, with the little of an Observer it reads
    observer._stopping, observer.caught_spinning = False, 0
    # A spin no scheduler delay can outlast: the record is found on the second look, however
    # long this test is kept off its CPU between the two (a 1 ms spin timed out under load).
    observer.spin_ns = 600 * 10**9
    observer.target_exited = lambda timeout_s=0.0: exited.pop(0)
    exited = [False, False, True]
    batches = [np.empty(0, dtype=EVENT), np.empty(1, dtype=EVENT), np.empty(0, dtype=EVENT), np.empty(0, dtype=EVENT)]
    looks, sleeps = [], []

    def pending():  # nothing on the first look, a record on the second: found while spinning
        looks.append(1)
        return len(looks) >= 2

    taken = list(observer._drain_batches(lambda: batches.pop(0) if batches else np.empty(0, dtype=EVENT),
                                         lambda: sleeps.append(1), pending))
    assert [b.size for b in taken] == [1] and sleeps == [] and observer.caught_spinning >= 1


@pytest.mark.parametrize("method,target", RING_BACKENDS)
@pytest.mark.parametrize("placement", ["shared", "free"])
def test_a_ring_consumer_spinning_on_the_target_s_cpu_is_refused(method, target, placement):
    with pytest.raises(ObserverError, match="--placement split"):
        execute(method, {"spin_us": 100}, Workload(target, 100, placement=placement))


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_live_options_spin_only_where_the_observer_has_a_cpu_of_its_own(method):
    cls = REGISTRY[method]
    assert "spin_us" not in cls.live_options_for("shared") | cls.live_options_for("free")
    live_split = cls.live_options_for("split")
    assert live_split.get("spin_us", 0) == cls.live_spin_us
    if cls.live_spin_us:
        assert "spin_us" in cls.cli_options
        cls.check_options(**live_split)
