"""The full sweep's repeats, chosen from the measured spread."""
from types import SimpleNamespace

from bench import sweep
from bench.sweep import MAX_REPEATS_FACTOR, MeasuredGroup, least_settled_width, repeat_the_least_settled
from bench.run.targets import Workload

BARE_NS = 500.0


def runs(ns_per_move):
    return [SimpleNamespace(ns_per_move=ns) for ns in ns_per_move]


def group(observed_ns, moves=1000, rate=0.0):
    return MeasuredGroup("ebpf", Workload("go", moves, rate=rate), [("ebpf", {})], runs([BARE_NS] * len(observed_ns)),
                         [runs(observed_ns)])


class Progress:
    def __init__(self):
        self.phases = []

    def phase(self, text, kind):
        self.phases.append(text)

    def step(self, text):
        pass


def test_the_width_is_the_slowdowns_interval_relative_to_it():
    assert least_settled_width(group([1000.0] * 5)) == 0.0  # +100 % every repeat: pinned down
    assert least_settled_width(group([700.0, 900.0, 1000.0, 1100.0, 1300.0])) > 0.2
    assert least_settled_width(group([500.0, 510.0, 490.0, 540.0, 460.0])) == 0.0  # near zero: not judged
    assert least_settled_width(group([700.0, 1300.0, 1000.0], rate=20_000)) == 0.0  # paced


def test_the_widest_group_gets_more_repeats_until_the_cap(monkeypatch):
    def compare(methods, workload, repeats, step):
        return runs([BARE_NS] * repeats), [runs([1000.0] * repeats if workload.moves == 2 else
                                                [700.0, 1300.0] * repeats)[:repeats]]

    monkeypatch.setattr(sweep, "compare", compare)
    wide = group([700.0, 900.0, 1000.0, 1100.0, 1300.0], moves=1)
    narrowing = group([700.0, 900.0, 1000.0, 1100.0, 1300.0], moves=2)  # extra repeats all +100 %
    settled = group([1000.0] * 5, moves=3)
    progress = Progress()
    repeat_the_least_settled([wide, narrowing, settled], 5, progress)
    assert len(wide.bare) == len(wide.observed[0]) == 5 + 3 == 8  # the next round would pass 2 × 5
    assert 8 <= MAX_REPEATS_FACTOR * 5
    assert len(narrowing.bare) == 8 and least_settled_width(narrowing) < least_settled_width(wide)
    assert len(settled.bare) == 5  # pinned down from the start: no repeat more
    assert len(progress.phases) == 2 and all("3 more repeats of ebpf" in text for text in progress.phases)


def test_the_extra_repeats_stop_at_the_budget(monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "compare", lambda methods, workload, repeats, step: (
        calls.append(repeats) or (runs([BARE_NS] * repeats), [runs([700.0, 1300.0, 1000.0][:repeats])])))
    monkeypatch.setattr(sweep, "EXTRA_BUDGET_S", 0.0)
    wide = group([700.0, 900.0, 1000.0, 1100.0, 1300.0])
    repeat_the_least_settled([wide], 5, Progress())
    assert calls == [] and len(wide.bare) == 5
