"""`tapbench watch` on an opponent written by someone else: bare move words from several
goroutines, a binary named rock-paper-scissors that starts writing after a short delay."""
import subprocess
import sys
import time
from collections import Counter

import pytest

from bench.run.targets import ROOT
from methods import REGISTRY

MOVES_PER_GOROUTINE = 30
WORDS = ["rock", "paper", "scissors"]
EXPECTED = Counter(WORDS[(g + i) % 3] for g in range(4) for i in range(MOVES_PER_GOROUTINE))


@pytest.fixture(scope="module")
def foreign_opponent(tmp_path_factory):
    binary = tmp_path_factory.mktemp("foreign") / "rock-paper-scissors"
    subprocess.run(["go", "build", "-o", str(binary), "main.go"], check=True,
                   cwd=ROOT / "tests" / "foreign_opponent", env=None)
    return str(binary)


def watch(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "bench", "watch", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def summary_of(counts: Counter) -> str:
    return f"{sum(counts.values())} moves ({', '.join(f'{m} {counts[m]}' for m in WORDS)}), 1 other writes"


def available(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")


@pytest.mark.parametrize("method", ["ebpf", "ptrace", "unotify", "strace"])
def test_moves_of_any_format_are_decoded(method, foreign_opponent):
    available(method)
    result = watch("--method", method, "--", foreign_opponent, str(MOVES_PER_GOROUTINE), "0", "200")
    assert result.returncode == 0, result.stderr
    assert summary_of(EXPECTED) in result.stdout  # "good game!" is the one other write
    assert result.stdout.count("opponent played: ") == sum(EXPECTED.values())


def test_pattern_and_raw(foreign_opponent):
    available("ptrace")
    result = watch("--method", "ptrace", "--pattern", "^(rock|paper)$", "--", foreign_opponent,
                   str(MOVES_PER_GOROUTINE), "0", "100")
    assert result.returncode == 0, result.stderr
    # Case matters to a pattern: "Rock" and "SCISSORS" are other writes now.
    assert f"{EXPECTED['paper']} moves (paper {EXPECTED['paper']})" in result.stdout
    raw = watch("--method", "ptrace", "--raw", "--", foreign_opponent, "1", "0", "0")
    assert "wrote b'Rock\\n'" in raw.stdout and "wrote b'good game!\\n'" in raw.stdout


@pytest.mark.parametrize("pattern", ["(rock", "rock|paper"])
def test_a_bad_pattern_is_one_error_line(pattern):
    result = watch("--method", "ptrace", "--pattern", pattern, "--", "true")
    assert result.returncode == 2 and result.stderr.startswith("ERROR: --pattern")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("method", ["ptrace", "ebpf"])
def test_watch_by_name_waits_for_the_opponent_and_ptrace_steps(method, foreign_opponent):
    available(method)
    watcher = subprocess.Popen([sys.executable, "-m", "bench", "watch", "--method", method,
                                "--name", "rock-paper-scissors", "--wait", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        # Started once the watcher says it waits (for a BPF backend: armed at exec), not after
        # a guess at how long that takes.
        said = []
        while "waiting for a process named rock-paper-scissors" not in (line := watcher.stderr.readline()):
            assert line, f"the watcher ended before it waited: {''.join(said)}"
            said.append(line)
        # It starts writing 3 s after it starts: long enough for the slowest attach (a BPF compile).
        opponent = subprocess.Popen([foreign_opponent, str(MOVES_PER_GOROUTINE), "3000", "200"],
                                    stdout=subprocess.DEVNULL)
        out, err = watcher.communicate(timeout=120)
        opponent.wait(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert summary_of(EXPECTED) in out
    if method == "ptrace":
        assert "note: ptrace attaches with --strategy step" in "".join(said)


def test_a_missing_name_mentions_wait():
    result = watch("--method", "ptrace", "--name", "no-such-program-here")
    assert result.returncode == 2 and "--wait SECONDS" in result.stderr


def test_ebpf_catches_a_program_at_exec_and_misses_not_one_move(foreign_opponent):
    available("ebpf")
    watcher = subprocess.Popen([sys.executable, "-m", "bench", "watch", "--method", "ebpf",
                                "--name", "rock-paper-scissors", "--wait", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert "waiting for a process named rock-paper-scissors (caught at exec)" in watcher.stderr.readline()
        # No delay at all: it writes from its first instant.
        opponent = subprocess.Popen([foreign_opponent, str(MOVES_PER_GOROUTINE), "0", "0"], stdout=subprocess.DEVNULL)
        out, err = watcher.communicate(timeout=60)
        opponent.wait(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert "at exec" in err and summary_of(EXPECTED) in out


def test_the_sweep_counts_what_each_method_missed_after_exec():
    from bench.probes.exec import missed_after_exec

    available("ebpf")
    found = missed_after_exec("ebpf", {})
    assert found["how"] == "caught at exec" and found["missed"] == 0 and found["seen"] == found["written"]
    refused = missed_after_exec("preload", {})  # LD_PRELOAD cannot attach: said, not counted
    assert refused["missed"] is None and "only at launch" in refused["error"]


def test_a_watch_that_never_ends_is_a_failed_row_not_a_crashed_sweep(monkeypatch, tmp_path):
    """The probe's watch is killed at its timeout and the row says FAILED; nothing is left."""
    from bench.probes import exec as intrusion
    from bench.document.as_markdown import section_lines
    from bench.document.sections import first_move
    from bench.document.rows import Document

    hanging = tmp_path / "hanging_watch.py"
    hanging.write_text("import sys, time\nprint('waiting for a process named x', file=sys.stderr, flush=True)\n"
                       "time.sleep(600)\n")
    monkeypatch.setattr(intrusion, "tapbench", lambda *argv: [sys.executable, str(hanging)])
    monkeypatch.setattr(intrusion, "EXEC_WATCH_TIMEOUT_S", 1)
    found = intrusion.missed_after_exec("ebpf", {})
    assert found["failed"] and found["missed"] is None and "did not end" in found["error"]
    shown = first_move.section(Document({}, {}, [], sections={"exec": [found]}))
    assert "FAILED: the watch did not end" in "\n".join(section_lines(shown))
    assert subprocess.run(["pgrep", "-f", str(hanging)], capture_output=True).returncode == 1
