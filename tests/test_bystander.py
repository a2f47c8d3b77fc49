"""The bystander measurement ends for every backend and leaves nothing running."""
import psutil
import pytest

from bench.probes.bystanders import bystander_cost
from bench.run.targets import is_opponent
from methods import REGISTRY


@pytest.mark.parametrize("method", ["ebpf", "ptrace", "preload"])
def test_bystander_measurement_completes_and_cleans_up(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    result = bystander_cost(method, {}, moves=20_000, repeats=2)
    assert len(result["samples_alone"]) == len(result["samples_watching"]) == 2
    assert all(sample > 0 for sample in result["samples_alone"] + result["samples_watching"])
    leftovers = [p for p in psutil.process_iter(["name"]) if is_opponent(p.info["name"] or "")]
    assert leftovers == []
