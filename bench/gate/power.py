"""The gate's power, measured (`tapbench gate --power ROUNDS`): how often the same-run A/B gate
(bench/gate/ab.py) fails unchanged code, and how often it catches a regression injected into each
layer. The reference is this commit itself; the candidate is the same code with one layer made
dearer through its test-only knob, by a quarter of the technique's own overhead per move as the
unchanged rounds measured it (the smallest of its placements'):

  the preload hook      busy work in every write it records   TAPBENCH_TEST_HOOK_EXTRA_NS
  the BPF program       busy work in every write it records   TAPBENCH_TEST_BPF_EXTRA_NS
  the ring consumer     Python work per event it hands over   TAPBENCH_TEST_CONSUMER_EXTRA_NS
  the ptrace stop path  busy work at every stop               TAPBENCH_TEST_EXTRA_NS_PER_STOP

Each injected round gates the rows the layer is part of. A benchmark of its own, run by hand:
ROUNDS of every kind take an hour or more; its figures go into the README with their date.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.gate import ab

INJECTED_SHARE = 0.25
# layer: (its knob, the technique whose overhead it is a quarter of, the rows it is gated on)
LAYERS = {
    "preload hook": ("TAPBENCH_TEST_HOOK_EXTRA_NS", "preload", ["preload"]),
    "BPF program": ("TAPBENCH_TEST_BPF_EXTRA_NS", "ebpf", ["ebpf"]),
    "ring consumer": ("TAPBENCH_TEST_CONSUMER_EXTRA_NS", "ebpf", ["ebpf", "preload"]),
    "ptrace stop path": ("TAPBENCH_TEST_EXTRA_NS_PER_STOP", "ptrace", ["ptrace"]),
}


def one_gate(rows, placements, reference, candidate, repeats, threshold, alpha) -> list[ab.Verdict]:
    found = ab.interleave(rows, placements, repeats, reference, candidate, progress=lambda text: None)
    verdicts = ab.judge(found, threshold, alpha)
    slower = {v.label for v in verdicts if v.failed}
    if slower:  # confirmed as the gate confirms: the failing rows again
        again = [row for row in rows if any(label.startswith(row[0] + " ") for label in slower)]
        places = tuple(sorted({label.split()[1] for label in slower}))
        confirmed = {v.label for v in ab.judge(ab.interleave(again, places, repeats, reference, candidate,
                                                             progress=lambda text: None), threshold, alpha)
                     if v.failed}
        for verdict in verdicts:
            verdict.failed = verdict.failed and verdict.label in confirmed
    return verdicts


def power(rounds: int, repeats: int, threshold: float, alpha: float, results: Path) -> int:
    rows, placements, missing = ab.rows_here(accept_missing=True)
    for reason in missing:
        print(f"warning: not measured: {reason}")
    head = ab._git("rev-parse", "HEAD")
    started = time.monotonic()
    report: dict = {"date": time.strftime("%Y-%m-%d"), "commit": head, "rounds": rounds, "repeats": repeats,
                    "threshold": threshold, "alpha": alpha, "unchanged": [], "injected": {}, "complete": False}
    out = results / "gate_power.json"

    def keep() -> None:
        """Written after every phase: a run stopped part way keeps what it measured, said
        incomplete."""
        report["wall_s"] = round(time.monotonic() - started)
        out.write_text(json.dumps(report, indent=1) + "\n")
    with ab.ReferenceTree(head) as tree, ab.CandidateTree() as copy, \
            ab.Worker(tree.tree, "reference (this commit)") as reference:
        overheads: dict[tuple, list[float]] = {}
        with ab.Worker(copy.tree, "this code, unchanged") as candidate:
            for round_ in range(rounds):
                verdicts = one_gate(rows, placements, reference, candidate, repeats, threshold, alpha)
                failed = sorted(v.label + " " + v.metric for v in verdicts if v.failed)
                report["unchanged"].append(failed)
                for v in verdicts:
                    if v.metric == "slowdown":
                        overheads.setdefault(tuple(v.label.split()), []).append(v.a)
                print(f"unchanged round {round_ + 1}/{rounds}: {'FAILED ' + ', '.join(failed) if failed else 'passed'}",
                      flush=True)
        keep()
        for layer, (knob, technique, gated) in LAYERS.items():
            sizes = [np.median(values) for (method, _), values in overheads.items() if method == technique]
            if not sizes:
                continue
            extra_ns = max(int(INJECTED_SHARE * min(sizes)), 1)
            layer_rows = [row for row in rows if row[0] in gated]
            caught = {f"{method} {placement}": 0 for method, *_ in layer_rows for placement in placements}
            # What the knob really added, as the gate measured it (B − A): a busy loop's own
            # cost can exceed the few ns asked for.
            added: dict[str, list[float]] = {label: [] for label in caught}
            with ab.Worker(copy.tree, f"this code, {layer} +{extra_ns} ns", {knob: str(extra_ns)}) as candidate:
                for round_ in range(rounds):
                    verdicts = one_gate(layer_rows, placements, reference, candidate, repeats, threshold, alpha)
                    for label in {v.label for v in verdicts if v.failed}:
                        caught[label] += 1
                    for v in verdicts:
                        if v.metric == "slowdown":
                            added[v.label].append(v.b - v.a)
                    print(f"{layer} +{extra_ns} ns, round {round_ + 1}/{rounds}: caught in "
                          f"{', '.join(sorted(v.label for v in verdicts if v.failed)) or 'no row'}", flush=True)
            report["injected"][layer] = {"extra_ns": extra_ns, "of_technique": technique, "caught": caught,
                                         "measured_added_ns": {label: float(np.median(values)) if values else None
                                                               for label, values in added.items()}}
            keep()
    report["complete"] = True
    keep()
    print_power(report, out)
    return 0


def print_power(report: dict, out: Path) -> None:
    rounds = report["rounds"]
    false_alarms = sum(bool(failed) for failed in report["unchanged"])
    print(f"\nunchanged code failed {false_alarms} of {rounds} gates")
    for layer, found in report["injected"].items():
        print(f"{layer} (+{found['extra_ns']} ns, a quarter of {found['of_technique']}'s overhead): caught " +
              ", ".join(f"{label} {count}/{rounds} (measured +{found['measured_added_ns'][label]:.0f} ns)"
                        for label, count in found["caught"].items()))
    print(f"written to {out} ({report['wall_s']} s)")
