"""What watching costs, counted whole: the target's extra CPU over its move loop plus the
observer's, each repeat against its own bare run, set-up and teardown apart; rows of another
definition are not compared; every backend hands over batches, and each kind of hand-over is
made from the other."""
from dataclasses import replace

import numpy as np
import pytest

from bench.document.compare import compare_documents
from bench.document.rows import RESULTS_FORMAT, Document, Row
from bench.run.results import whole_cost
from bench.run.runner import Execution, execute
from bench.run.targets import Workload
from bench.run.truth import Truth
from methods import REGISTRY
from methods.base import Observer
from methods.protocol import EVENT, MoveEvent, batch_to_events, events_to_batch


def execution(loop_cpu_ns: int, observer_cpu_ns: int, written: int = 1000, setup: int = 5, teardown: int = 7):
    truth = Truth({"written": written, "wall_ns": written * 300, "writers": []})
    return Execution(method="x", ns_per_move=300.0, ready_ns=0, truth=truth, observer_cpu_ns=observer_cpu_ns,
                     target_loop_cpu_ns=loop_cpu_ns, setup_cpu_ns=setup * 1_000_000, teardown_cpu_ns=teardown * 1_000_000)


def test_the_cost_pairs_each_repeat_with_its_own_bare_run():
    # Bare runs drift (300 then 600 ns of loop CPU a move); each observed run costs 100 ns more in
    # the target and 50 ns of observer CPU more than the harness's, in its own repeat.
    bare = [execution(300_000, 10_000), execution(600_000, 20_000), execution(300_000, 10_000)]
    observed = [execution(400_000, 60_000), execution(700_000, 70_000), execution(400_000, 60_000)]
    cost = whole_cost(bare, observed)
    assert cost["samples_cpu_cost_ns_per_event"] == pytest.approx([150.0] * 3)
    assert cost["cpu_cost_ns_per_event"] == pytest.approx(150.0)
    assert cost["target_extra_cpu_ns_per_move"] == pytest.approx(100.0)
    assert cost["observer_cpu_ns_per_move"] == pytest.approx(50.0)
    # Per run, not per event: apart, in ms.
    assert (cost["observer_setup_cpu_ms"], cost["observer_teardown_cpu_ms"]) == (5.0, 7.0)


def document(cost_format: int, slowdowns) -> Document:
    row = Row(method="ebpf", options={}, exact=True, samples_bare_ns_per_move=[100.0] * len(slowdowns),
              samples_observed_ns_per_move=[100.0 * (1 + s) for s in slowdowns])
    meta = {"kernel": "k", "cpu_model": "c", "cpu_count": 2, "lockdown": "none"}
    if cost_format < RESULTS_FORMAT:
        meta["converted_from_format"] = cost_format
    return Document(metadata=meta, methods={}, runs=[row])


def test_rows_measured_under_another_definition_are_not_compared_on_speed():
    old, new = document(4, [0.5] * 6), document(RESULTS_FORMAT, [2.0] * 6)  # four times the slowdown
    (change,), warnings = compare_documents(old, new)
    assert not change.speed_regressed and change.note == "measured under different definitions: not compared"
    assert f"different definitions (results formats 4 and {RESULTS_FORMAT})" in warnings[0]
    # capture is compared whatever the definitions
    broken = document(RESULTS_FORMAT, [0.5] * 6)
    broken.runs[0] = replace(broken.runs[0], exact=False)
    (change,), _ = compare_documents(old, broken)
    assert change.correctness_regressed
    (change,), _ = compare_documents(document(RESULTS_FORMAT, [0.5] * 6), new)  # same definitions
    assert change.speed_regressed


def test_events_and_batches_are_made_from_each_other():
    events = [MoveEvent(10 + n, 20 + n, 42, 43, b"rock 0 %d\n" % n) for n in range(5)] + \
        [MoveEvent(99, 100, 42, 44, b"\0binary\xff" * 5)]
    batch = events_to_batch(events)
    assert batch.dtype == EVENT and list(batch_to_events(batch)) == [e._replace(raw=e.raw[:32]) for e in events]

    with pytest.raises(TypeError, match="must give events\\(\\) or batches\\(\\)"):
        class Neither(Observer):
            method = "neither-for-this-test"

            def _observe(self, pid):
                pass


@pytest.mark.parametrize("method", sorted(name for name, cls in REGISTRY.items() if not cls.baseline))
def test_every_backend_reports_its_cost_and_the_whole_of_it_adds_up(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    target = REGISTRY[method].targets[0]
    run = execute(method, {}, Workload(target, 3000, rate=20_000))
    assert run.verdict.captured == 3000 or REGISTRY[method].reference_peer
    # The target reports its loop's CPU, and the phases of the observer's CPU were each measured.
    assert 0 < run.target_loop_cpu_ns <= run.target_cpu_ns
    assert run.setup_cpu_ns > 0 and run.teardown_cpu_ns >= 0 and run.observer_cpu_ns > 0
