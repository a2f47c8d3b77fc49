"""`tapbench run` end to end: table, JSON keys, verification."""
import json
import subprocess
import sys

from tests.conftest import needs_ebpf

REQUIRED_KEYS = {"method", "target", "expected", "captured", "lost", "phantom", "in_order",
                 "ns_per_move_bare", "ns_per_move_observed", "overhead_ns", "latency_p50_ns",
                 "latency_p99_ns"}


def run(*argv):
    return subprocess.run([sys.executable, "-m", "bench", "run", *argv], capture_output=True, text=True)


def test_none_method_needs_no_privileges_and_writes_json(tmp_path):
    out = tmp_path / "none.json"
    result = run("--method", "none", "--moves", "2000", "--repeats", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert {"kernel", "cpu_model", "bcc", "go", "commit", "date", "lockdown"} <= set(document["metadata"])
    (row,) = document["runs"]
    assert REQUIRED_KEYS <= set(row)
    assert row["method"] == "none" and row["captured"] is None
    assert len(row["samples_bare_ns_per_move"]) == 2


@needs_ebpf
def test_ebpf_run_json_is_verified_and_flat(tmp_path):
    out = tmp_path / "ebpf.json"
    result = run("--method", "ebpf", "--target", "go", "--moves", "20000", "--repeats", "2",
                 "--goroutines", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["runs"]
    assert REQUIRED_KEYS <= set(row)
    assert (row["expected"], row["captured"], row["lost"], row["phantom"], row["in_order"]) == \
        (40_000, 40_000, 0, 0, True)
    assert row["overhead_ns"] == row["overhead_ns"]  # a number, not NaN
    assert row["latency_p50_ns"] > 0 and row["latency_p99_ns"] >= row["latency_p50_ns"]
    # From the opponent's own stamps: every 64th move of each of 2 writers, 2 repeats.
    assert row["latency_from"] == "target" and row["latency_samples"] == 2 * 2 * (10_000 // 64 + 1)
    assert row["mechanism_latency_p50_ns"] > 0
    low, high = row["overhead_ratio_ci"]
    assert low <= row["overhead_ratio"] <= high
    assert "40000/40000 exact" in result.stdout


def test_the_garbage_collector_is_off_while_a_run_is_observed_and_back_after(monkeypatch):
    import gc

    from bench.run.runner import collector_paused, execute
    from bench.run.targets import Workload
    from methods.none import NoObserver

    seen_enabled = []
    events = NoObserver.events

    def recording(self):
        seen_enabled.append(gc.isenabled())
        yield from events(self)

    monkeypatch.setattr(NoObserver, "events", recording)
    execute("none", {}, Workload("go", 1000))
    assert seen_enabled == [False] and gc.isenabled()
    try:
        with collector_paused():
            raise KeyError
    except KeyError:
        pass
    assert gc.isenabled()
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()  # left as it was found
    gc.enable()
