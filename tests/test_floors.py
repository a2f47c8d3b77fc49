"""Floors: each mechanism's cheapest form (--capture count), checked by its count."""
import json
import subprocess
import sys

import pytest

from bench.run.runner import execute
from bench.document.rows import Row
from bench.run.results import add_floor_ratios
from bench.run.targets import ROOT, Workload
from methods import REGISTRY

FLOORED = sorted(name for name, cls in REGISTRY.items() if "capture" in cls.cli_options)


def test_every_own_backend_has_a_floor():
    own = {name for name, cls in REGISTRY.items() if not cls.baseline and not cls.reference_peer}
    assert own <= set(FLOORED)


@pytest.mark.parametrize("method", FLOORED)
def test_a_floor_counts_every_write_and_nothing_else(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    target = REGISTRY[method].targets[0]
    execution = execute(method, {"capture": "count"}, Workload(target, 20_000, goroutines=2, noise=1000))
    noise = execution.truth.report["noise_writes_stdout"]
    assert noise > 0 and execution.mechanism["counted"] == 20_000 + noise
    assert execution.verdict.exact and execution.verdict.counted == 20_000 + noise
    assert execution.mechanism["captured_reported"] == 0  # it yields no events


def test_a_floor_that_counts_too_few_is_not_exact():
    from bench.run.verify import verify_count

    short, over = verify_count(99, [100], 0), verify_count(101, [100], 0)
    assert not short.exact and short.lost == 1
    assert not over.exact and over.phantom == 1


def test_overhead_over_floor_pairs_the_repeats():
    def row(capture, observed):
        return Row(method="ebpf", options={"hook": "raw"} | ({"capture": capture} if capture else {}),
                   capture=capture or "full", samples_bare_ns_per_move=[100.0, 200.0, 100.0],
                   samples_observed_ns_per_move=observed)
    backend, floor = row(None, [400.0, 500.0, 400.0]), row("count", [200.0, 300.0, 200.0])
    add_floor_ratios([backend, floor])
    assert backend.over_floor_samples == [3.0, 3.0, 3.0] and backend.over_floor == 3.0
    assert floor.over_floor is None


def test_a_floor_below_noise_gives_a_note_not_a_ratio():
    from bench.document.sections.every_run import floor_cell

    def row(capture, observed):
        return Row(method="preload", options={"capture": capture} if capture else {}, capture=capture or "full",
                   samples_bare_ns_per_move=[100.0, 200.0], samples_observed_ns_per_move=observed)
    backend, floor = row(None, [160.0, 260.0]), row("count", [95.0, 205.0])
    add_floor_ratios([backend, floor])
    assert backend.over_floor is None and backend.over_floor_note.startswith("floor not above noise")
    assert floor_cell(backend) == "floor not above noise"


def test_run_reports_a_floor_row(tmp_path):
    if REGISTRY["ptrace"].unavailable_reason():
        pytest.skip("ptrace unavailable")
    out = tmp_path / "floor.json"
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "ptrace", "--capture", "count",
                             "--moves", "2000", "--repeats", "1", "--json", str(out)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "counted 2000/2000 exact (floor)" in result.stdout
    assert json.loads(out.read_text())["runs"][0]["capture"] == "count"
