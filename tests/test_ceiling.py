"""The throughput-ceiling search: its logic on a simulated method, and one real probe."""
import pytest

from bench.probes import ceilings as ceiling
from bench.probes.ceilings import find_ceiling
from methods import REGISTRY


def simulated(limit, reason, target_alone_limit=float("inf"), observer_ns=100.0, target_ns=300.0):
    """A method that holds every rate up to `limit` and fails above it for `reason`; the target
    alone (the unobserved control) keeps its schedule up to target_alone_limit. Each probe
    says the CPU per move the observer and the target used."""
    def probe(method, options, target, rate, placement="free"):
        alone = REGISTRY[method].baseline
        held = rate <= (target_alone_limit if alone else limit)
        return {"offered": rate, "captured_rate": rate if held else limit, "held": held,
                "reasons": [] if held else ["throttled" if alone else reason],
                "observer_cpu_ns_per_move": 0.0 if alone else observer_ns, "target_loop_cpu_ns_per_move": target_ns}
    return probe


def test_ramp_then_confirmed_bisection_lands_within_9_percent_below_the_limit(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(50_000, "throttled"))
    found = find_ceiling("ebpf", {}, "go", maximum=1_000_000)
    assert 50_000 / 1.09 <= found["ceiling"] <= 50_000
    assert found["limited_by"] == "throttled"
    offered = [p["offered"] for p in found["probes"]]
    assert offered[:4] == [1000, 4000, 16_000, 64_000]
    # Every bisection rate that held was probed CONFIRMATIONS times; the ceiling among them.
    assert offered.count(found["ceiling"]) == ceiling.CONFIRMATIONS
    assert found["control_at_first_failure"]["held"]  # the target alone kept that schedule


def test_a_limit_the_target_alone_shares_is_said_to_be_the_machines(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(50_000, "throttled", target_alone_limit=60_000))
    found = find_ceiling("ebpf", {}, "go", maximum=1_000_000)
    assert found["first_failure"] < 60_000 and found["limited_by"] == "throttled"
    monkeypatch.setattr(ceiling, "probe", simulated(50_000, "throttled", target_alone_limit=40_000))
    found = find_ceiling("ebpf", {}, "go", maximum=1_000_000)
    assert "the target alone, unobserved, was throttled at that rate too" in found["limited_by"]


def test_a_method_that_never_fails_is_limited_by_the_target(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(float("inf"), "loss"))
    found = find_ceiling("ebpf", {}, "go", maximum=100_000)
    assert found["ceiling"] == pytest.approx(ceiling.TOP_SHARE * 100_000)
    assert found["first_failure"] is None and "target's own maximum" in found["limited_by"]


def test_a_method_that_fails_at_the_first_rate_has_no_ceiling(monkeypatch):
    monkeypatch.setattr(ceiling, "probe", simulated(10, "loss"))
    found = find_ceiling("ebpf", {}, "go", maximum=100_000)
    assert found["ceiling"] is None and found["limited_by"] == "loss" and len(found["probes"]) == 1


def test_a_real_probe_is_verified_against_the_truth():
    if REGISTRY["ptrace"].unavailable_reason():
        pytest.skip(REGISTRY["ptrace"].unavailable_reason())
    result = ceiling.probe("ptrace", {"strategy": "seccomp"}, "go", 4000)
    assert result["held"] and result["captured"] == result["moves"] == ceiling.MIN_PROBE_MOVES
    assert result["achieved"] >= ceiling.KEEP_FRACTION * 4000


@pytest.mark.parametrize("method,reason,placement,observer_ns,limit", [
    ("ebpf", "loss", "split", 50.0, "consumer (it did not take the events in time)"),
    ("ebpf", "throttled", "shared", 200.0, "consumer (it took 40% of the one CPU)"),
    ("ebpf", "throttled", "shared", 50.0, "mechanism (the target's own CPU, the observer took 14%)"),
    ("ebpf", "throttled", "split", 200.0, "mechanism (the target's own CPU, the observer took 40%)"),
    ("ptrace", "throttled", "shared", 5000.0, "mechanism (the target waits at every stop)"),
])
def test_the_ceiling_says_what_limits_it(monkeypatch, method, reason, placement, observer_ns, limit):
    monkeypatch.setattr(ceiling, "probe", simulated(50_000, reason, observer_ns=observer_ns))
    assert find_ceiling(method, {}, "go", maximum=1_000_000, placement=placement)["limit"] == limit
    monkeypatch.setattr(ceiling, "probe", simulated(float("inf"), reason))
    assert find_ceiling(method, {}, "go", maximum=100_000, placement=placement)["limit"] == "the target's own rate"
