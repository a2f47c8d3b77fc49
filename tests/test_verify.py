"""The verifier catches every way a capture can be wrong."""
from bench.run.truth import line, move_codes
from bench.run.verify import verify

SEED, PID = 7, 1234
COUNTS = [5, 4]


def stream():
    """The exact capture: writer 0 and 1 interleaved, each in its own order."""
    events = []
    for n in range(5):
        for g, count in enumerate(COUNTS):
            if n < count:
                events.append((PID, line(int(move_codes(SEED, g, count)[n]), g, n)))
    return events


def test_exact_capture_is_exact():
    verdict = verify(stream(), SEED, COUNTS, PID)
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (9, 0, 0, True)
    assert verdict.exact


def test_a_missing_move_is_lost():
    events = stream()
    del events[3]
    verdict = verify(events, SEED, COUNTS, PID)
    assert (verdict.captured, verdict.lost, verdict.exact) == (8, 1, False)


def test_a_duplicate_is_a_phantom():
    events = stream()
    events.append(events[0])
    verdict = verify(events, SEED, COUNTS, PID)
    assert (verdict.captured, verdict.phantom, verdict.duplicates, verdict.exact) == (9, 1, 1, False)


def test_a_move_of_the_wrong_kind_is_a_phantom_and_the_real_one_is_lost():
    events = stream()
    pid, raw = events[0]
    word, rest = raw.split(b" ", 1)
    other = b"rock" if word != b"rock" else b"paper"
    events[0] = (pid, other + b" " + rest)
    verdict = verify(events, SEED, COUNTS, PID)
    assert (verdict.phantom, verdict.lost) == (1, 1)


def test_another_process_is_a_phantom_and_non_moves_are_counted_apart():
    events = stream() + [(PID, b"hello\n"), (PID, b""), (PID + 1, events_first_line())]
    verdict = verify(events, SEED, COUNTS, PID)
    assert (verdict.phantom, verdict.not_a_move, verdict.wrong_pid) == (1, 2, 1)
    assert verdict.captured == 9 and not verdict.exact


def test_non_moves_the_opponent_announced_keep_the_capture_exact():
    noise = [(PID, b""), (PID, b"rock 0 0\n" * 3), (PID, b"paper 0 0"), (PID, b"\n")]
    assert verify(stream() + noise, SEED, COUNTS, PID, expected_not_a_move=4).exact
    assert not verify(stream() + noise, SEED, COUNTS, PID, expected_not_a_move=3).exact


def events_first_line():
    return stream()[0][1]


def test_moves_beyond_the_expected_count_are_phantoms():
    events = stream() + [(PID, line(0, 1, 4)), (PID, line(0, 2, 0))]
    assert verify(events, SEED, COUNTS, PID).phantom == 2


def test_reordering_within_a_writer_is_detected():
    events = stream()
    events[0], events[2] = events[2], events[0]  # writer 0's moves 0 and 1 swapped
    verdict = verify(events, SEED, COUNTS, PID)
    assert verdict.captured == 9 and not verdict.in_order and verdict.out_of_order == 1
    assert not verdict.exact


def test_interleaving_between_writers_is_not_reordering():
    events = [e for e in stream() if b" 1 " in e[1]] + [e for e in stream() if b" 0 " in e[1]]
    assert verify(events, SEED, COUNTS, PID).exact
