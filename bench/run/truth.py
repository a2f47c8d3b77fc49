"""Ground truth: the opponent's move sequence, reproduced exactly, and its own report.

The algorithm is documented in gotargets/rock-paper-scissors/main.go and mirrored here:

    goroutine g of G writes N//G + (1 if g < N % G else 0) moves, numbered n = 0, 1, ...
    move(seed, g, n) = splitmix64(seed + g*0xD1B54A32D192ED03 + (n+1)*0x9E3779B97F4A7C15) % 3

with 0 = rock, 1 = paper, 2 = scissors, all arithmetic modulo 2**64, and one line
"<move> <g> <n>\\n" per write().
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np

from methods.protocol import MOVES

TRUTH_FORMAT = "tapbench-truth/1"

_GAMMA_SEQ = np.uint64(0x9E3779B97F4A7C15)
_GAMMA_WRITER = np.uint64(0xD1B54A32D192ED03)
_LINE = re.compile(rb"(rock|paper|scissors) (\d{1,4}) (\d{1,10})\n")


def writer_counts(moves: int, goroutines: int) -> list[int]:
    base, extra = divmod(moves, goroutines)
    return [base + (1 if g < extra else 0) for g in range(goroutines)]


def move_codes(seed: int, goroutine: int, count: int) -> np.ndarray:
    """The codes (0, 1, 2) goroutine `goroutine` writes, in order, vectorised splitmix64."""
    with np.errstate(over="ignore"):
        n = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(seed % 2**64) + np.uint64(goroutine) * _GAMMA_WRITER + n * _GAMMA_SEQ
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(3)).astype(np.uint8)


def line(move_code: int, goroutine: int, n: int) -> bytes:
    return b"%s %d %d\n" % (MOVES[move_code].encode(), goroutine, n)


def writer_digest(seed: int, goroutine: int, count: int) -> str:
    """sha256 of the exact bytes the writer emits, as the opponent reports it."""
    digest = hashlib.sha256()
    names = [m.encode() for m in MOVES]
    prefix = b" %d " % goroutine
    for n, code in enumerate(move_codes(seed, goroutine, count).tolist()):
        digest.update(names[code] + prefix + b"%d\n" % n)
    return digest.hexdigest()


def decode_line(raw: bytes) -> tuple[int, int, int] | None:
    """(move code, goroutine, n) from the first bytes of a write, or None if it is no move line."""
    # fullmatch: a write is a move only if it is exactly one move line (a 1 MiB write that
    # starts with one, or a line split over two writes, is not).
    match = _LINE.fullmatch(raw)
    if match is None:
        return None
    return MOVES.index(match.group(1).decode()), int(match.group(2)), int(match.group(3))


def decode_move_name(raw: bytes) -> str | None:
    """Just the move word, as the article's consumer prints it, of a write that is exactly
    one move line ("rock and roll\n" is not a move)."""
    decoded = decode_line(raw)
    return MOVES[decoded[0]] if decoded else None


class TruthMismatch(Exception):
    """The opponent's own report disagrees with the sequence tapbench expects."""


@dataclass
class Truth:
    """The opponent's report, checked against the reproduced sequence."""

    report: dict

    @classmethod
    def load(cls, path: str) -> "Truth":
        with open(path) as f:
            report = json.load(f)
        if report.get("format") != TRUTH_FORMAT:
            raise TruthMismatch(f"{path}: not a {TRUTH_FORMAT} report")
        return cls(report)

    @property
    def seed(self) -> int:
        return self.report["seed"]

    @property
    def counts(self) -> list[int]:
        return [w["written"] for w in self.report["writers"]]

    @property
    def written(self) -> int:
        return self.report["written"]

    @property
    def wall_ns(self) -> int:
        return self.report["wall_ns"]

    def check(self) -> None:
        """Raise TruthMismatch unless the opponent wrote exactly the sequence we reproduce."""
        r = self.report
        expected = writer_counts(r["moves"], r["goroutines"])
        for writer, count in zip(r["writers"], expected):
            if writer["errors"] or writer["written"] != count:
                raise TruthMismatch(f"goroutine {writer['goroutine']} wrote {writer['written']} of "
                                    f"{count} moves ({writer['errors']} write errors)")
            if writer["sha256"] != writer_digest(r["seed"], writer["goroutine"], count):
                raise TruthMismatch(f"goroutine {writer['goroutine']}: digest differs from the "
                                    "reproduced sequence")
        per_kind = [0, 0, 0]
        for g, count in enumerate(expected):
            per_kind = [a + b for a, b in
                        zip(per_kind, np.bincount(move_codes(r["seed"], g, count), minlength=3))]
        if [r["per_kind"][m] for m in MOVES] != [int(x) for x in per_kind]:
            raise TruthMismatch(f"per-kind counts {r['per_kind']} differ from the reproduced "
                                f"{dict(zip(MOVES, map(int, per_kind)))}")
