"""The eBPF backend against the real kernel and the real Go opponent."""
import signal
import struct
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from bench.run.runner import execute
from bench.run.targets import Workload
from bench.run.truth import Truth
from bench.run.verify import verify
from methods.base import ObserverError
from methods._kernel.process import find_pid_by_name
from methods._kernel.bpf_loader import SENTINEL_TGID, LoadedProgram, compiled, forget_compiled
from methods.ebpf import EbpfObserver, text_for
from tests.conftest import OPPONENT, loaded_bpf_program_ids, needs_ebpf, wait_until_unloaded

pytestmark = needs_ebpf


def assert_exact(execution, expected):
    verdict = execution.verdict
    assert (verdict.expected, verdict.captured, verdict.lost, verdict.phantom) == (expected, expected, 0, 0)
    assert verdict.in_order and execution.lost_reported == 0


def test_captures_200k_flat_out_moves_exactly():
    execution = execute("ebpf", {}, Workload("go", 200_000))
    assert_exact(execution, 200_000)
    assert execution.mechanism["ebpf"]["kernel_matched"] == 200_000


def test_captures_8_goroutines_exactly_with_per_writer_order():
    execution = execute("ebpf", {}, Workload("go", 200_000, goroutines=8))
    assert_exact(execution, 200_000)
    assert execution.verdict.per_writer_captured == [25_000] * 8
    assert execution.truth.report["gomaxprocs"] >= 2


@pytest.mark.parametrize("options", [{"hook": "tracepoint"}, {"wakeup": "poll", "poll_ms": 5}])
def test_every_hook_and_wakeup_policy_is_exact(options):
    assert_exact(execute("ebpf", options, Workload("go", 50_000)), 50_000)


def test_libc_target_is_exact():
    assert_exact(execute("ebpf", {}, Workload("libc", 50_000)), 50_000)


def test_attach_by_name_to_a_running_opponent(running_opponent):
    process, report = running_opponent("-moves", "20000", "-goroutines", "4")
    pid = find_pid_by_name("rock-paper-scissors")
    assert pid == process.pid
    with EbpfObserver() as observer:
        observer.attach(pid)
        process.send_signal(signal.SIGUSR1)  # the opponent starts only once we watch
        events = list(observer.events())
    assert process.wait(timeout=30) == 0
    truth = Truth.load(str(report))
    truth.check()
    verdict = verify(((e.pid, e.raw) for e in events), truth.seed, truth.counts, pid)
    assert verdict.exact and verdict.captured == 20_000


def test_attach_by_name_refuses_ambiguity(running_opponent):
    first, _ = running_opponent("-moves", "1")
    second, _ = running_opponent("-moves", "1")
    with pytest.raises(ObserverError, match=rf"2 processes .*PIDs {min(first.pid, second.pid)}"):
        find_pid_by_name("rock-paper-scissors")


def test_another_process_writing_rock_is_never_captured():
    # A bystander writes move lines to its own stdout as fast as it can, during the whole run.
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import os\nwhile True: os.write(1, b'rock 0 0\\n')"],
        stdout=subprocess.DEVNULL)
    try:
        execution = execute("ebpf", {}, Workload("go", 100_000))
    finally:
        bystander.kill()
        bystander.wait()
    assert_exact(execution, 100_000)
    assert execution.verdict.wrong_pid == 0


def test_close_unloads_the_program_even_after_an_error_in_the_consumer():
    before = loaded_bpf_program_ids()
    with pytest.raises(RuntimeError, match="consumer failed"):
        with EbpfObserver() as observer:
            observer.launch([str(OPPONENT), "-moves", "1000"])
            ours = loaded_bpf_program_ids() - before
            assert len(ours) == 1
            observer.release()
            for _ in observer.events():
                raise RuntimeError("consumer failed")
    assert wait_until_unloaded(ours) == set()
    assert observer.process.poll() is not None  # the launched opponent did not outlive us


def test_watch_prints_moves_and_a_summary():
    result = subprocess.run(
        [sys.executable, "-m", "bench", "watch", "--method", "ebpf", "--",
         str(OPPONENT), "-moves", "30", "-rate", "300"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len([l for l in lines if "] opponent played: " in l]) == 30
    assert lines[0].startswith("[") and lines[0].split("] opponent played: ")[1] in ("rock", "paper", "scissors")
    assert "30 moves" in lines[-1] and "0 lost (kernel counter)" in lines[-1]


def test_watch_stops_cleanly_on_sigint_and_leaves_the_target_running(running_opponent):
    process, _ = running_opponent("-moves", "100000", "-rate", "1000")
    watcher = subprocess.Popen([sys.executable, "-m", "bench", "watch", "--method", "ebpf",
                                "--pid", str(process.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    while not (line := watcher.stderr.readline()).startswith("watching PID"):  # compiled and attached
        assert line, "the watch ended before it watched"
    process.send_signal(signal.SIGUSR1)
    assert "opponent played" in watcher.stdout.readline()  # a move is seen: then stop it
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert "(stopped)" in out.splitlines()[-1]
    assert process.poll() is None  # an attached target is left as it was found


def test_a_full_ring_behind_a_slowed_consumer_counts_every_loss(tmp_path):
    """A 1 MiB ring holds about 16k events; the consumer sleeps until the opponent has written
    100k. The kernel's drop count must account for every move missing, and nothing is exact."""
    moves = 100_000
    report = tmp_path / "truth.json"
    with EbpfObserver(ring_mb=1) as observer:
        process = observer.launch(Workload("go", moves).argv(str(report)))
        observer.release()
        process.wait()  # the consumer, slowed on purpose: nothing read until the end
        events = [(e.pid, e.raw) for e in observer.events()]
        lost = observer.counters.lost
    truth = Truth.load(str(report))
    verdict = verify(events, truth.seed, truth.counts, truth.report["pid"])
    assert lost > 0 and verdict.lost == lost and verdict.captured == moves - lost
    assert verdict.phantom == 0 and not verdict.exact


def test_a_hook_that_finds_its_target_at_exec_is_exact():
    execution = execute("ebpf", {"match": "exec"}, Workload("go", 50_000, goroutines=2))
    assert_exact(execution, 50_000)
    facts = execution.mechanism["ebpf"]
    assert facts["match"] == "exec" and facts["kernel_matched"] == 50_000
    assert "tracepoint__sched__sched_process_exec" in facts["programs"]


def test_match_exec_refuses_a_running_process(running_opponent):
    process, _ = running_opponent()
    with EbpfObserver(match="exec") as observer, pytest.raises(ObserverError, match="watch --name"):
        observer.attach(process.pid)


def test_the_kernel_times_the_programs_only_while_statistics_are_held():
    from methods._kernel.bpf_system import bpf_run_time_stats

    untimed = execute("ebpf", {}, Workload("go", 20_000))
    with bpf_run_time_stats():
        timed = execute("ebpf", {}, Workload("go", 20_000))
    after = execute("ebpf", {}, Workload("go", 20_000))
    for execution, expect_time in ((untimed, False), (timed, True), (after, False)):
        assert_exact(execution, 20_000)
        stats = execution.mechanism["ebpf"]["programs"]["raw_tracepoint__sys_enter"]
        if expect_time:  # the raw hook runs for every system call, filtering
            assert stats["runs"] >= 20_000 and stats["run_ns"] > 0
        else:  # the kernel counts runs only while it times them
            assert stats == {"runs": 0, "run_ns": 0}


def test_the_profile_splits_each_variant_into_its_programs():
    from bench.probes.bpf_profile import bpf_profile

    profile = bpf_profile([("ebpf", {}), ("ebpf", {"capture": "count"}), ("ebpf", {"match": "exec"})],
                          {"ebpf": Workload("go", 20_000, placement="shared")})
    assert profile["empty_program_ns"] > 0
    programs = {(tuple(sorted(p["options"].items())), p["program"]): p for p in profile["programs"]}
    full = programs[((), "raw_tracepoint__sys_enter")]
    assert full["moves"] == 20_000 and full["runs_per_move"] >= 1 and full["ns_per_run"] is not None
    assert ((("match", "exec"),), "tracepoint__sched__sched_process_exec") in programs


def test_run_prints_program_times_with_bpf_stats():
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ebpf", "--moves", "5000",
                             "--repeats", "1", "--bpf-stats"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "raw_tracepoint__sys_enter:" in result.stdout and "ns/run (timing included)" in result.stdout


def test_the_next_run_waits_until_the_kernel_has_freed_the_programs_and_maps():
    from bench.run import runner
    from methods._kernel.bpf_system import loaded_bpf_objects

    execute("ebpf", {}, Workload("go", 2000))
    created = runner._created_by_last_execution
    # A program and its maps (the ring, the counters) were made by that run, and the kernel
    # frees them some 200 ms after the run closed them...
    assert {kind for kind, _ in created} == {"program", "map"}
    runner.settle()
    # ...and none is left once settle() returns
    assert not created & loaded_bpf_objects()


def test_ebpf_text_refuses_to_show_a_program_it_would_not_load():
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ebpf", "--match", "exec", "--ebpf"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--match exec" in result.stderr and "TARGET_TGID" not in result.stdout


def test_a_second_start_reuses_the_bytecode_with_its_own_target_and_maps():
    forget_compiled()
    first = execute("ebpf", {}, Workload("go", 3000, seed=1))
    second = execute("ebpf", {}, Workload("go", 5000, seed=2, goroutines=2))
    assert_exact(first, 3000)
    assert_exact(second, 5000)  # another process: the tgid was written into the reused bytecode
    facts = [first.mechanism["ebpf"], second.mechanism["ebpf"]]
    assert [f["compiled_at_start"] for f in facts] == [True, False]
    # Counters of its own: the second start's kernel count is its own moves only.
    assert [f["kernel_matched"] for f in facts] == [3000, 5000]
    forget_compiled()
    assert execute("ebpf", {}, Workload("go", 1000)).mechanism["ebpf"]["compiled_at_start"] is True


def test_a_bytecode_without_the_target_is_refused_and_leaves_nothing():
    program, _ = compiled(text_for(SENTINEL_TGID), maps=(b"events", b"counters"))
    # The same program with every instruction that names the target made to name nothing.
    blind = [replace(f, instructions=f.instructions.replace(struct.pack("<i", SENTINEL_TGID), struct.pack("<i", 7)))
             for f in program.functions]
    before = loaded_bpf_program_ids()
    with pytest.raises(ObserverError, match="the target's tgid is nowhere in the bytecode"):
        LoadedProgram(replace(program, functions=tuple(blind)), tgid=4242)
    assert loaded_bpf_program_ids() - before == set()
    loaded = LoadedProgram(program, tgid=4242)  # and the real one loads, then unloads
    assert set(loaded.program_fds) == {b"raw_tracepoint__sys_enter"}
    loaded.close()
    assert wait_until_unloaded(loaded_bpf_program_ids() - before) == set()


@needs_ebpf
def test_a_program_that_started_before_the_exec_hook_was_armed_is_found_once_it_is(running_opponent):
    """watch --name --wait looks for the program, arms its exec hook, and looks again: one
    that started in between is watched too, and said to have come late."""
    opponent, report = running_opponent("-moves", "500")
    with EbpfObserver() as observer:
        pid = observer.attach_at_exec("rock-paper-scissors", 5)
        assert pid == opponent.pid and "running once the exec hook was armed" in observer.came_late
        opponent.send_signal(signal.SIGUSR1)
        events = list(observer.events())
    assert opponent.wait(timeout=30) == 0
    assert len(events) == 500 and {event.pid for event in events} == {opponent.pid}
