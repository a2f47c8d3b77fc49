"""The duel: the article's story, measured. A referee launches the opponent, which stamps every
move (CLOCK_MONOTONIC, just before its write). A spy watches it through a technique and answers
each move it sees with the move that beats it. The referee, not the spy, judges afterwards, on
the same clock: a win is the right counter-move, given within the deadline of the opponent's
own stamp of that move. Which technique is fast enough to cheat, and at what deadline?
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from bench.run.placement import observer_placed
from bench.probes._probe import Context, Probe, everyone
from bench.run.runner import collector_paused
from bench.run.targets import Workload
from bench.run.truth import Truth, decode_line, move_codes
from methods.base import REGISTRY
from methods.protocol import MOVES

PROBE = Probe("duels", everyone, order=120, what="the duel: each move answered within a deadline, live")
DUEL_MOVES, DUEL_RATE = 3000, 1000  # a move a millisecond, every move stamped
BEATS = {0: 1, 1: 2, 2: 0}  # rock is beaten by paper, paper by scissors, scissors by rock
DEFAULT_DEADLINES_US = (10, 30, 100, 300, 1000, 3000, 10000)


def duel(method: str, options: dict, workload: Workload, deadlines_us: list[float]) -> dict:
    """One duel: every move stamped, answered by the spy as soon as it sees it, judged after."""
    workload = Workload(workload.target, workload.moves, rate=workload.rate, goroutines=workload.goroutines,
                        seed=workload.seed, stamp_every=1, placement=workload.placement)
    with tempfile.TemporaryDirectory(prefix="tapbench-duel-") as scratch:
        report = os.path.join(scratch, "truth.json")
        answers = []  # (writer, n, counter-move code, when the spy gave it)
        with observer_placed(workload.placement) as target_cpus, REGISTRY[method](**options) as spy, \
                collector_paused():
            spy.target_cpus = target_cpus
            spy.launch(workload.argv(report))
            spy.release()
            for event in spy.events():
                seen = decode_line(event.raw)
                if seen is not None:
                    code, writer, n = seen
                    answers.append((writer, n, BEATS[code], time.monotonic_ns()))
            spy.process.wait()
        truth = Truth.load(report)
    truth.check()
    return judge(method, options, workload, truth, answers, deadlines_us)


def judge(method: str, options: dict, workload: Workload, truth: Truth, answers: list,
          deadlines_us: list[float]) -> dict:
    """The referee: for every move the opponent wrote, was the right answer given in time?"""
    stamps = [w["stamps_ns"] for w in truth.report["writers"]]
    moves = [move_codes(truth.seed, g, count) for g, count in enumerate(truth.counts)]
    delays, wrong, seen = [], 0, set()
    for writer, n, answer, given_ns in answers:
        if (writer, n) in seen or writer >= len(moves) or n >= len(moves[writer]):
            continue  # a move answered twice counts once; a move never written is no move
        seen.add((writer, n))
        if BEATS[int(moves[writer][n])] != answer:
            wrong += 1
            continue
        delays.append(given_ns - stamps[writer][n])
    total = truth.written
    delays_ns = np.array(delays, dtype=np.int64)
    wins = [int((delays_ns <= deadline * 1000).sum()) for deadline in deadlines_us]
    return {"method": method, "options": options, "target": workload.target, "placement": workload.placement,
            "moves": total, "rate": workload.rate, "deadlines_us": list(deadlines_us), "wins": wins,
            "win_rate": [w / total for w in wins], "answered": len(seen), "wrong": wrong,
            "unanswered": total - len(seen),
            "delay_p50_ns": int(np.percentile(delays_ns, 50)) if delays else None,
            "delay_p99_ns": int(np.percentile(delays_ns, 99)) if delays else None}


def describe_moves() -> str:
    return ", ".join(f"{MOVES[code]} is beaten by {MOVES[BEATS[code]]}" for code in BEATS)


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    """Each technique in its live settings, as watch runs it, in its default placement."""
    found = []
    for method, options in lineup:
        cls = REGISTRY[method]
        context.phase(f"duel: the spy watches through {method}", "duels")
        live = options | cls.live_options_for(cls.default_placement) | cls.watch_options()  # as watch runs it
        found.append(duel(method, live, Workload(cls.targets[0], DUEL_MOVES, rate=DUEL_RATE,
                                                 placement=cls.default_placement), DEFAULT_DEADLINES_US))
        context.step(f"duel {method}")
    return found
