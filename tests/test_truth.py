"""The sequence tapbench reproduces is exactly what the Go opponent writes."""
import subprocess

import pytest

from bench.run.truth import (MOVES, Truth, TruthMismatch, decode_line, decode_move_name, line,
                         move_codes, writer_counts, writer_digest)
from tests.conftest import OPPONENT


def run_opponent(tmp_path, *flags):
    report = tmp_path / "truth.json"
    out = subprocess.run([str(OPPONENT), "-report", str(report), *flags], capture_output=True,
                         check=True)
    return out.stdout, Truth.load(str(report))


@pytest.mark.parametrize("seed,moves,goroutines", [(1, 1000, 1), (42, 999, 3), (2**64 - 1, 50, 8)])
def test_python_reproduces_every_line_the_opponent_writes(tmp_path, seed, moves, goroutines):
    stdout, truth = run_opponent(tmp_path, "-seed", str(seed), "-moves", str(moves),
                                 "-goroutines", str(goroutines))
    by_writer = {g: [] for g in range(goroutines)}
    for written in stdout.splitlines(keepends=True):
        code, g, n = decode_line(written)
        by_writer[g].append(written)
    for g, count in enumerate(writer_counts(moves, goroutines)):
        codes = move_codes(seed, g, count)
        assert by_writer[g] == [line(int(code), g, n) for n, code in enumerate(codes)]
        assert truth.report["writers"][g]["sha256"] == writer_digest(seed, g, count)
    truth.check()
    assert truth.written == moves


def test_check_rejects_a_report_that_differs_from_the_sequence(tmp_path):
    _, truth = run_opponent(tmp_path, "-moves", "20")
    truth.report["writers"][0]["sha256"] = "0" * 64
    with pytest.raises(TruthMismatch, match="digest"):
        truth.check()


def test_writer_counts_share_moves_fairly():
    assert writer_counts(10, 3) == [4, 3, 3]
    assert sum(writer_counts(1_000_001, 8)) == 1_000_001


def test_every_line_fits_in_the_32_bytes_an_observer_copies():
    longest = line(MOVES.index("scissors"), 4095, 9_999_999_999)
    assert len(longest) <= 32
    assert decode_line(longest[:32]) == (2, 4095, 9_999_999_999)


@pytest.mark.parametrize("raw", [b"", b"rock", b"rock 1 2", b"rock 1 2 \n", b"rocks 1 2\n",
                                 b"paper -1 2\n", b"\x00\xffbinary", b"scissors 1 x\n",
                                 b"{\"format\": 1}\n"])
def test_decode_rejects_what_is_not_a_move_line(raw):
    assert decode_line(raw) is None


def test_decode_move_name_reads_the_word_only():
    assert decode_move_name(b"paper 3 17\n") == "paper"
    assert decode_move_name(b"papers\n") is None
    assert decode_move_name(b"rock and roll\n") is None and decode_move_name(b"rock 0 1") is None
