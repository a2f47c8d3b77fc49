"""Watching from the first move: `tapbench watch --name` started before the opponent exists."""
from __future__ import annotations

import subprocess
import tempfile

from bench.probes._probe import Context, Probe, can_attach
from bench.probes._watching import tapbench, watch_flags
from bench.run.targets import OPPONENT_NAME, ROOT, Workload
from bench.run.truth import Truth

PROBE = Probe("exec", can_attach, attaching=True, order=90, what="watch --name started before the opponent")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return context.each(lineup, "{} {} waiting for the opponent to start", missed_after_exec)


EXEC_MOVES, EXEC_RATE = 2000, 10_000  # the opponent writes from its start, a move every 100 µs
# The watch ends when the opponent does (0.2 s of moves) or when its --wait of 60 s runs out.
EXEC_WATCH_TIMEOUT_S = 120


def missed_after_exec(method: str, options: dict) -> dict:
    """`tapbench watch --name` started before the opponent exists; the opponent then starts
    writing at once. How many of its moves did the watch miss? Its ground truth says."""
    watch = subprocess.Popen(tapbench("watch", "--placement", "free", "--method", method,
                                      *watch_flags(method, options), "--name", OPPONENT_NAME, "--wait", "60"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    opponent = None
    try:
        ready = ""
        while "waiting for a process named" not in ready:
            line = watch.stderr.readline()
            if not line:  # the watch ended without waiting: it cannot watch that way
                return {"method": method, "options": options, "written": None, "seen": None, "missed": None,
                        "how": None, "error": (ready + watch.stderr.read()).strip().splitlines()[-1]}
            ready += line
        with tempfile.TemporaryDirectory(prefix="tapbench-exec-") as scratch:
            report = f"{scratch}/truth.json"
            opponent = subprocess.Popen(Workload("go", EXEC_MOVES, rate=EXEC_RATE).argv(report),
                                        stdout=subprocess.DEVNULL)
            try:
                out, err = watch.communicate(timeout=EXEC_WATCH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                # A failure of this probe, said in its row; the sweep goes on (the watch and the
                # opponent are killed below).
                return {"method": method, "options": options, "written": None, "seen": None, "missed": None,
                        "how": None, "failed": True,
                        "error": f"the watch did not end within {EXEC_WATCH_TIMEOUT_S} s of the opponent's start"}
            opponent.wait(timeout=30)
            written = Truth.load(report).written
        seen = out.count("opponent played: ")
        return {"method": method, "options": options, "written": written, "seen": seen, "missed": written - seen,
                "how": "caught at exec" if "at exec" in err else "polling /proc, then attach", "error": None}
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
        if opponent is not None and opponent.poll() is None:
            opponent.kill()
            opponent.wait()
