"""One side of the gate's same-run A/B (bench/gate/ab.py): a process that runs executions of its own
tree's code on request. Two versions of `bench`/`methods` cannot share a Python process (the
same package names; the registry and bcc's compile cache are process-wide), so each side runs
here, in its own process, started from its own tree, and the parent interleaves them.

Protocol: one JSON object a line on stdin ({"method", "options", "workload"}), one JSON
object a line on stdout with what the judge needs of the run, or {"error": ...}. Started as
`python -m bench.gate.worker` with the tree's root first on sys.path.
"""
from __future__ import annotations

import json
import sys
import traceback

# The Observer contract this tree's methods/ speaks (methods/base.py OBSERVER_CONTRACT): the
# parent measures only a tree that speaks its own.
try:
    from methods.protocol import OBSERVER_CONTRACT
except ImportError:  # a tree from before the constant: 2 if its backends hand over batches
    from methods.base import Observer

    OBSERVER_CONTRACT = 2 if hasattr(Observer, "batches") else 1


def measure(request: dict) -> dict:
    from bench.run.runner import execute
    from bench.run.targets import Workload

    execution = execute(request["method"], request["options"], Workload(**request["workload"]))
    verdict = execution.verdict
    return {"ns_per_move": execution.ns_per_move, "written": execution.truth.written,
            "target_loop_cpu_ns": execution.target_loop_cpu_ns, "observer_cpu_ns": execution.observer_cpu_ns,
            "exact": None if verdict is None else verdict.exact, "not_applicable": execution.not_applicable}


def main() -> int:
    # Say which contract this tree's methods/ speaks before anything else: the parent checks it.
    print(json.dumps({"contract": OBSERVER_CONTRACT}), flush=True)
    for line in sys.stdin:
        try:
            answer = measure(json.loads(line))
        except Exception as error:  # reported to the parent, which fails the gate with it
            answer = {"error": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc(limit=5)}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
