"""The throughput-ceiling search: its logic on a simulated method, and one real probe."""
import pytest

from bench import ceiling
from bench.ceiling import find_ceiling
from methods import REGISTRY


def simulated(limit, reason):
    """A method that holds every rate up to `limit` and fails above it for `reason`."""
    def probe(method, options, target, rate):
        held = rate <= limit
        return {"offered": rate, "captured_rate": rate if held else limit, "held": held,
                "reasons": [] if held else [reason]}
    return probe


def test_ramp_then_bisection_lands_within_9_percent_below_the_limit(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(50_000, "throttled"))
    found = find_ceiling("x", {}, "go", maximum=1_000_000)
    assert 50_000 / 1.09 <= found["ceiling"] <= 50_000
    assert found["limited_by"] == "throttled"
    offered = [p["offered"] for p in found["probes"]]
    assert offered[:3] == [1000, 4000, 16_000] and len(offered) == 4 + ceiling.BISECT_STEPS


def test_a_method_that_never_fails_is_limited_by_the_target(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(float("inf"), "loss"))
    found = find_ceiling("x", {}, "go", maximum=100_000)
    assert found["ceiling"] == pytest.approx(ceiling.TOP_SHARE * 100_000)
    assert found["first_failure"] is None and "target's own maximum" in found["limited_by"]


def test_a_method_that_fails_at_the_first_rate_has_no_ceiling(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(10, "loss"))
    found = find_ceiling("x", {}, "go", maximum=100_000)
    assert found["ceiling"] is None and found["limited_by"] == "loss" and len(found["probes"]) == 1


def test_a_real_probe_is_verified_against_the_truth():
    if REGISTRY["ptrace"].unavailable_reason():
        pytest.skip(REGISTRY["ptrace"].unavailable_reason())
    result = ceiling.probe("ptrace", {"strategy": "seccomp"}, "go", 4000)
    assert result["held"] and result["captured"] == result["moves"] == ceiling.MIN_PROBE_MOVES
    assert result["achieved"] >= ceiling.KEEP_FRACTION * 4000
