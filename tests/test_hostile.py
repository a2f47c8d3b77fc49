"""The target is not trusted: a program that attacks what of its observer it can reach
(bench/hostile_target.c: under preload and zpoline, the ring mapped into its memory) neither kills the
observer nor makes it print an impossible figure; the observer says what the target did, and
leaves nothing behind. Every backend, both attacks."""
import pytest

from bench.probes.hostile import ATTACKS, attacked
from methods import REGISTRY

OBSERVERS = sorted(name for name, cls in REGISTRY.items() if not cls.baseline)


@pytest.mark.parametrize("method", OBSERVERS)
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_hostile_target_cannot_crash_or_fool_its_observer(method, attack):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    outcome = attacked(method, {}, attack)
    assert outcome["survived"], outcome
    assert not outcome["impossible_figure"] and outcome["left_behind"] == [], outcome
    if REGISTRY[method].in_target_memory is None:  # nothing of these observers is in the target's memory
        assert outcome["target_found"] == "nothing of the observer's" and outcome["observer_exit"] == 0, outcome
        return
    assert outcome["target_found"] == REGISTRY[method].in_target_memory == "the ring", repr(outcome)
    if attack == "truncate":  # the memfd is sealed: the target cannot cut the ring short
        assert outcome["target_said"] == "truncate -> -1 (Operation not permitted)", outcome
        assert outcome["observer_exit"] == 0 and outcome["moves_seen"] == 6, outcome
    else:  # scribbled: the watch ends with the finding, and a non-zero exit
        assert outcome["observer_exit"] == 1, outcome
        assert outcome["observer_said"].startswith("the target damaged the ring: "), outcome
