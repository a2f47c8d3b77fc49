"""The duel: the spy answers, the referee judges on the opponent's own stamps."""
import json
import subprocess
import sys

import pytest

from bench.probes.duels import BEATS, judge
from bench.run.targets import ROOT, Workload
from bench.run.truth import Truth, move_codes
from methods import REGISTRY


def truth_of(moves, stamps):
    return Truth({"seed": 1, "written": moves, "moves": moves, "goroutines": 1,
                  "writers": [{"goroutine": 0, "written": moves, "stamps_ns": stamps}]})


def test_the_referee_counts_right_answers_within_each_deadline():
    codes = move_codes(1, 0, 4).tolist()
    truth = truth_of(4, [1000, 2000, 3000, 4000])
    answers = [(0, 0, BEATS[codes[0]], 1000 + 5_000),      # right, 5 µs after the stamp
               (0, 1, BEATS[codes[1]], 2000 + 50_000),     # right, 50 µs
               (0, 1, BEATS[codes[1]], 2000 + 60_000),     # the same move again: counted once
               (0, 2, (BEATS[codes[2]] + 1) % 3, 3000)]    # wrong; move 3 never answered
    result = judge("ptrace", {}, Workload("go", 4), truth, answers, [10, 100])
    assert result["wins"] == [1, 2] and result["win_rate"] == [0.25, 0.5]
    assert (result["answered"], result["wrong"], result["unanswered"]) == (3, 1, 1)


@pytest.mark.skipif(REGISTRY["ptrace"].unavailable_reason() is not None, reason="ptrace unavailable")
def test_a_duel_end_to_end(tmp_path):
    out = tmp_path / "duel.json"
    result = subprocess.run([sys.executable, "-m", "bench", "duel", "--method", "ptrace", "--moves", "300",
                             "--deadline-us", "1,1000000", "--json", str(out)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    (duel,) = json.loads(out.read_text())["duels"]
    # Within a second, every move is answered right; within 1 µs of the opponent's stamp, none.
    assert duel["win_rate"] == [0.0, 1.0] and duel["unanswered"] == 0 and duel["wrong"] == 0
    assert "≤ 1e+06 µs" in result.stdout or "≤ 1000000 µs" in result.stdout


def test_a_bad_deadline_is_one_error_line():
    result = subprocess.run([sys.executable, "-m", "bench", "duel", "--method", "ptrace", "--deadline-us", "soon"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.startswith("ERROR: --deadline-us")
