"""What the ring-buffer backends (eBPF, uprobe, preload and the in-process hooks) share: turning
a ring's records into an EVENT batch, and the loop that drains a ring until the target is gone."""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

from methods.protocol import BATCH_EVENTS, CONSUMER_EXTRA_NS, EVENT, spin_for


class RingConsumer:
    """Mixed into an Observer whose events come through a ring buffer."""

    def _event_batch(self, records: np.ndarray, pids: str | None = None, check=None) -> np.ndarray:
        """An EVENT batch from ring records with ts_ns, tid, count, copied and a
        CAPTURE_BYTES-wide head (what the ring-buffer backends read), copied out of the ring
        once. pids: the name of the column that holds each record's process, as the mechanism
        knows it (the verifier checks it), or None when nothing but the target can have written
        it. check(batch, counts): how many records, from the first, can be trusted (a ring the
        target can write is checked on this copy, before its stamps are converted)."""
        seen_ns = time.monotonic_ns()  # the whole batch reached Python now
        batch = np.empty(records.size, dtype=EVENT)
        batch["seen_ns"] = seen_ns
        batch["ts_ns"] = records["ts_ns"]
        batch["pid"] = self.pid if pids is None else records[pids]
        batch["tid"] = records["tid"]
        batch["length"] = records["copied"]
        batch["head"] = records["head"]
        counts = np.array(records["count"], dtype=np.uint64)
        if check is not None:
            keep = check(batch, counts)
            batch, counts = batch[:keep], counts[:keep]
        batch["ts_ns"] = self._stamps_ns(batch["ts_ns"])
        if CONSUMER_EXTRA_NS:  # test-only: the gate's power benchmark makes the consumer dearer
            until = time.monotonic_ns() + CONSUMER_EXTRA_NS * batch.size
            while time.monotonic_ns() < until:
                pass
        self.counters.captured += batch.size
        self.counters.bytes += int(counts.sum(dtype=np.uint64))
        if batch.size:
            self.counters.batch_ns_max = max(self.counters.batch_ns_max, time.monotonic_ns() - seen_ns)
        return batch

    def _stamps_ns(self, stamps: np.ndarray) -> np.ndarray:
        """A batch's mechanism stamps as CLOCK_MONOTONIC ns. A backend that stamps with
        another clock converts them here: after the batch's arrival was stamped, so the
        conversion does not count as delay."""
        return stamps

    def _drain_batches(self, take, wait, pending) -> Iterator[np.ndarray]:
        """The ring-buffer backends' loop: take() returns the EVENT batch waiting (maybe
        empty), wait() sleeps until there may be more. Ends after a final drain once the target
        has exited (checked before reading, so its last writes are already in the ring) or
        stop(). pending() tells, cheaply, whether a record waits: with --spin-us it is asked
        before each sleep."""
        while not self._stopping:
            exited = self.target_exited()
            batch = take()
            if batch.size:
                yield batch
            if batch.size == BATCH_EVENTS:
                continue  # a full batch: more may be waiting
            # The ring is drained: sleep (or spin) until there may be more, rather than take
            # the few records written meanwhile (a consumer that keeps up with a flat-out
            # producer would otherwise take batches of a few hundred, at several times the
            # cost an event).
            if exited:
                break
            if self.spin_ns and spin_for(pending, self.spin_ns):
                self.caught_spinning += 1
            else:
                wait()
        while (last := take()).size:
            yield last
