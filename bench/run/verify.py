"""Check a captured event stream against the opponent's ground truth.

The verifier knows the truth and the events; it knows nothing of mechanisms. Correctness is
exact: every expected move captured once, nothing else, each writer's moves in order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

from bench.run.truth import decode_line, move_codes


@dataclass
class Verdict:
    expected: int
    captured: int = 0  # distinct generator moves seen, with the right kind
    lost: int = 0  # expected moves never seen
    phantom: int = 0  # events taken for a move that is not a first sighting of a generator move
    duplicates: int = 0  # part of phantom: a move seen twice
    wrong_pid: int = 0  # part of phantom: an event from a process we did not watch
    not_a_move: int = 0  # writes of the target that are no move line (counted, not phantom)
    expected_not_a_move: int = 0  # the non-move writes the opponent says it made
    in_order: bool = True  # every writer's moves arrived in the order it wrote them
    out_of_order: int = 0
    per_writer_captured: list[int] = field(default_factory=list)
    counted: int | None = None  # a floor (--capture count): the writes it counted, no events
    # (event index, writer, n) of the first sighting of every move n with n % stamp_every == 0:
    # the moves the opponent stamped, for latency. Not part of the verdict's JSON.
    stamped: list[tuple[int, int, int]] = field(default_factory=list, repr=False)

    @property
    def exact(self) -> bool:
        return (self.captured == self.expected and self.phantom == 0 and self.in_order
                and self.not_a_move == self.expected_not_a_move)

    def as_dict(self) -> dict:
        verdict = asdict(self) | {"exact": self.exact}
        del verdict["stamped"]
        return verdict


def verify(raw_events: Iterable[tuple[int, bytes]], seed: int, counts: list[int],
           pid: int, expected_not_a_move: int = 0, stamp_every: int = 0) -> Verdict:
    """raw_events: (pid, first bytes of the write) in arrival order; counts: moves per writer;
    expected_not_a_move: the writes to stdout the opponent made that are not moves;
    stamp_every: which moves the opponent stamped (Verdict.stamped lists where they arrived)."""
    expected_codes = [move_codes(seed, g, count) for g, count in enumerate(counts)]
    seen = [bytearray(count) for count in counts]
    last_n = [-1] * len(counts)
    verdict = Verdict(expected=sum(counts), per_writer_captured=[0] * len(counts),
                      expected_not_a_move=expected_not_a_move)
    for index, (event_pid, raw) in enumerate(raw_events):
        if event_pid != pid:
            verdict.phantom += 1
            verdict.wrong_pid += 1
            continue
        decoded = decode_line(raw)
        if decoded is None:
            verdict.not_a_move += 1
            continue
        code, g, n = decoded
        if g >= len(counts) or n >= counts[g] or expected_codes[g][n] != code:
            verdict.phantom += 1
            continue
        if seen[g][n]:
            verdict.phantom += 1
            verdict.duplicates += 1
            continue
        seen[g][n] = 1
        verdict.per_writer_captured[g] += 1
        if stamp_every and n % stamp_every == 0:
            verdict.stamped.append((index, g, n))
        if n < last_n[g]:
            verdict.out_of_order += 1
            verdict.in_order = False
        last_n[g] = n
    verdict.captured = sum(verdict.per_writer_captured)
    verdict.lost = verdict.expected - verdict.captured
    return verdict


def verify_count(counted: int, counts: list[int], expected_not_a_move: int = 0) -> Verdict:
    """A floor's verdict: it yields no events, only how many writes to the watched descriptor it
    counted. Exact when that is every move plus the non-moves the opponent says it wrote to
    stdout, and nothing else; a surplus is a phantom, a shortfall a loss."""
    expected = sum(counts)
    moves = counted - expected_not_a_move
    return Verdict(expected=expected, captured=min(max(moves, 0), expected), lost=max(expected - moves, 0),
                   phantom=max(moves - expected, 0), not_a_move=expected_not_a_move,
                   expected_not_a_move=expected_not_a_move, counted=counted, per_writer_captured=[])
