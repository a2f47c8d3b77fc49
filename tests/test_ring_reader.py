"""eBPF's RingReader on a memfd laid out like a BPF ring buffer map (consumer page, producer
page, data): what it takes from records that are discarded, still being written, or foreign.
No kernel program is needed, so these run everywhere."""
import mmap
import os
from contextlib import contextmanager

import numpy as np
import pytest

from methods.base import ObserverError
from methods._kernel.bpf_ring import BUSY_BIT, DISCARD_BIT, PAGE_SIZE, RECORD, SAMPLE_SIZE, RingReader

DATA_SIZE = 1 << 16


@contextmanager
def ring_holding(lengths: list[int]):
    """A reader over records 0, 1, 2 ... (ts_ns = index) whose header lengths are `lengths`,
    all of them produced (producer_pos past the last)."""
    records = np.zeros(len(lengths), dtype=RECORD)
    records["header_len"] = lengths
    records["ts_ns"] = np.arange(len(lengths))
    fd = os.memfd_create("tapbench-ring-test")
    try:
        os.ftruncate(fd, 2 * PAGE_SIZE + 2 * DATA_SIZE)
        with mmap.mmap(fd, 2 * PAGE_SIZE + DATA_SIZE) as raw:
            raw[2 * PAGE_SIZE:2 * PAGE_SIZE + records.nbytes] = records.tobytes()
            raw[PAGE_SIZE:PAGE_SIZE + 8] = np.uint64(records.nbytes).tobytes()
        reader = RingReader(fd, DATA_SIZE)
        try:
            yield reader
        finally:
            reader.close()
    finally:
        os.close(fd)


def test_every_submitted_record_is_taken_and_consumed():
    with ring_holding([SAMPLE_SIZE] * 5) as reader:
        assert reader.read()["ts_ns"].tolist() == [0, 1, 2, 3, 4]
        assert int(reader._consumer_pos[0]) == 5 * RECORD.itemsize
        assert reader.read().size == 0


def test_a_discarded_record_is_skipped_and_one_still_being_written_ends_the_batch():
    lengths = [SAMPLE_SIZE, SAMPLE_SIZE | DISCARD_BIT, SAMPLE_SIZE, SAMPLE_SIZE | BUSY_BIT, SAMPLE_SIZE]
    with ring_holding(lengths) as reader:
        assert reader.read()["ts_ns"].tolist() == [0, 2]
        # consumed up to the busy record, not past it: it is read once it is submitted
        assert int(reader._consumer_pos[0]) == 3 * RECORD.itemsize


def test_a_record_that_is_no_move_event_is_an_error():
    with ring_holding([SAMPLE_SIZE, SAMPLE_SIZE + 8]) as reader:
        with pytest.raises(ObserverError, match="not a move_event"):
            reader.read()
