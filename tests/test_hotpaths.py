"""The Python hot paths, benchmarked (pytest-benchmark) and checked at the same time: each
benchmark also asserts that the path produced the right result.

In `make test` they run once each (benchmarking disabled, see pyproject.toml); `make gate`
times them and compares with results/benchmarks/ (see the Makefile for the margin)."""
import mmap
import os

import numpy as np
import pytest

from bench.run.truth import line, move_codes, writer_counts
from bench.run.verify import verify
from methods._kernel.rings import RingConsumer
from methods.protocol import Counters, batch_to_events

EVENTS = 100_000


@pytest.fixture(scope="module")
def move_lines():
    codes = move_codes(1, 0, EVENTS)
    return [line(int(code), 0, n) for n, code in enumerate(codes)]


def test_verifier_on_100k_events(benchmark, move_lines):
    events = [(4242, raw) for raw in move_lines]
    verdict = benchmark(verify, events, 1, writer_counts(EVENTS, 1), 4242)
    assert verdict.exact and verdict.captured == EVENTS


def test_batch_decode_into_move_events(benchmark, move_lines):
    from methods._kernel.bpf_ring import RECORD

    batch = np.zeros(EVENTS, dtype=RECORD)
    batch["ts_ns"] = np.arange(EVENTS)
    batch["tid"] = 7
    heads = np.frombuffer(b"".join(raw.ljust(32, b"\0") for raw in move_lines), dtype="V32")
    batch["head"] = heads
    batch["copied"] = [len(raw) for raw in move_lines]
    batch["count"] = batch["copied"]
    observer = RingConsumer()  # what the ring backends share, with the little of an Observer it reads
    observer.pid, observer.counters = 4242, Counters()

    # What a ring consumer does per batch now: ring records into one EVENT batch.
    events = benchmark(lambda: observer._event_batch(batch))
    assert events.size == EVENTS and int(events["ts_ns"][-1]) == EVENTS - 1 and (events["pid"] == 4242).all()
    # and, for what needs them one at a time (watch), MoveEvents from it
    assert [e.raw for e in batch_to_events(events)] == move_lines


def test_bpf_ring_drain_of_100k_records(benchmark):
    """RingReader on a memfd laid out like a BPF ring buffer map (consumer page, producer
    page, data), holding 100k committed records."""
    from methods._kernel.bpf_ring import PAGE_SIZE, RECORD, SAMPLE_SIZE, RingReader

    data_size = 1 << 23  # 8 MiB, a power of two like the kernel's
    fd = os.memfd_create("tapbench-ring-test")
    try:
        os.ftruncate(fd, 2 * PAGE_SIZE + 2 * data_size)
        with mmap.mmap(fd, 2 * PAGE_SIZE + data_size) as raw:
            records = np.zeros(EVENTS, dtype=RECORD)
            records["header_len"] = SAMPLE_SIZE
            records["ts_ns"] = np.arange(EVENTS)
            raw[2 * PAGE_SIZE:2 * PAGE_SIZE + records.nbytes] = records.tobytes()
            raw[PAGE_SIZE:PAGE_SIZE + 8] = np.uint64(records.nbytes).tobytes()  # producer_pos
        reader = RingReader(fd, data_size)

        def drain():
            reader._consumer_pos[0] = 0  # unread again, for the next round
            batches = []
            while (batch := reader.read()).size:  # BATCH_EVENTS at a time
                batches.append(batch)
            return np.concatenate(batches)

        batch = benchmark(drain)
        assert batch.size == EVENTS and int(batch["ts_ns"][-1]) == EVENTS - 1
        reader.close()
    finally:
        os.close(fd)
