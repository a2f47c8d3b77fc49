"""The observation protocol every backend speaks and bench/ reads: the descriptor watched, the
bytes copied, a move event and a batch of them, the option specs several backends share, and
a backend's counters. Imports nothing else of methods/, so anything may import it."""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import numpy as np


class ObserverUnavailable(Exception):
    """The mechanism cannot run here; the message is the one-line reason shown to users."""


class ObserverError(Exception):
    """A user-facing failure (bad PID, ambiguous name ...); the message says what to do."""


# What the harness may rely on of every backend; the gate's A/B measures the code of another
# commit with this harness only if that commit's methods/ speak the same (bench/gate/worker.py).
# History: 1 events() only; 2 batches() (EVENT arrays), target_user, target_damage, came_late.
OBSERVER_CONTRACT = 2
# The observation protocol, shared by every backend and by bench/ (which imports it from here).
# The descriptor every observer watches unless told (Observer.watched_fd): the opponent writes
# its moves to stdout, and its ground-truth report goes to a file, so the report's own write()
# calls are never counted. `run -- CMD --fd N` watches another.
WATCHED_FD = 1
MAX_WATCHED_FD = 1 << 20  # the kernel's default ceiling on a process's descriptors (fs.nr_open)
CAPTURE_BYTES = 32  # what every mechanism copies from the start of a write() buffer
MOVES = ("rock", "paper", "scissors")
# The opponent builds a backend may say it sees (bench/run/targets.py runs them):
#   go    pure Go, static, raw write system calls
#   cgo   the cgo build (dynamic), still raw system calls from Go's os.Stdout
#   libc  the cgo build writing through glibc's write()
TARGET_NAMES = ("go", "cgo", "libc")


def spin_for(look: Callable[[], object], spin_ns: int) -> object:
    """look() until it answers something true or spin_ns have passed; its answer, or None."""
    deadline = time.monotonic_ns() + spin_ns
    while True:
        found = look()
        if found:
            return found
        if time.monotonic_ns() > deadline:
            return None


# Where a backend's own count of lost events comes from (None: it has no such count).
LOSS_SOURCES = ("kernel counter", "ring counter", "tool's own report")
_MOVE_WORD = re.compile(rb"(?i)\b(rock|paper|scissors)\b")


def move_word(raw: bytes) -> str | None:
    """The move a write holds for a live watch of any opponent: the first whole word rock,
    paper or scissors, any case ("Rock!" is rock, "rocks" is nothing)."""
    match = _MOVE_WORD.search(raw)
    return match.group(1).decode().lower() if match else None


class MoveEvent(NamedTuple):
    """One observed write(). A NamedTuple: a consumer makes millions, and a tuple is the
    cheapest immutable record Python has (a frozen dataclass costs several times more)."""

    ts_ns: int  # CLOCK_MONOTONIC when the mechanism saw the write
    seen_ns: int  # CLOCK_MONOTONIC when Python received the event
    pid: int
    tid: int
    raw: bytes  # the first bytes of the buffer, as the mechanism copied them

    @property
    def move(self) -> str | None:
        return move_word(self.raw)


# Observed writes as every backend hands them over a batch at a time (Observer.batches()): one
# record per write, so that counting, checking and timing a run is work per batch, not per
# event, and the harness comes close to the mechanism's own cost.
EVENT = np.dtype([("ts_ns", "<i8"),    # CLOCK_MONOTONIC when the mechanism saw the write
                  ("seen_ns", "<i8"),  # CLOCK_MONOTONIC when Python received it (its batch)
                  ("pid", "<i4"), ("tid", "<i4"),
                  ("length", "<u4"),   # bytes of head that hold the buffer's start
                  ("head", f"V{CAPTURE_BYTES}")])
# Backends whose mechanism hands over one event at a time (a tracer's stop) are gathered into
# batches of at most this many; the target does not wait for a batch to fill. A ring reader
# takes at most this many records at a time too: a batch that fits in the CPU's caches costs
# about 25 ns an event to copy out and convert, one of 200,000 about 100 (measured here).
BATCH_EVENTS = 4096


# Test-only: busy work (ns) a ring consumer adds per event it hands over, from
# $TAPBENCH_TEST_CONSUMER_EXTRA_NS, so that the gate's power benchmark can make this layer
# dearer (bench/gate/power.py); unset, it costs one test a batch.
CONSUMER_EXTRA_NS = int(os.environ.get("TAPBENCH_TEST_CONSUMER_EXTRA_NS", "0"))


def events_to_batch(events: list[MoveEvent]) -> np.ndarray:
    batch = np.empty(len(events), dtype=EVENT)
    batch["ts_ns"] = [e.ts_ns for e in events]
    batch["seen_ns"] = [e.seen_ns for e in events]
    batch["pid"] = [e.pid for e in events]
    batch["tid"] = [e.tid for e in events]
    batch["length"] = [len(e.raw) for e in events]
    batch["head"] = [e.raw[:CAPTURE_BYTES] for e in events]
    return batch


def batch_to_events(batch: np.ndarray) -> Iterator[MoveEvent]:
    """One MoveEvent per record, for what needs them one at a time (watch, the duel's spy)."""
    heads = batch["head"].tobytes()  # keeps NUL bytes, unlike a bytes-string column
    width = batch.dtype["head"].itemsize
    offset = 0
    for ts_ns, seen_ns, pid, tid, length in zip(batch["ts_ns"].tolist(), batch["seen_ns"].tolist(),
                                               batch["pid"].tolist(), batch["tid"].tolist(),
                                               batch["length"].tolist()):
        yield MoveEvent(ts_ns, seen_ns, pid, tid, heads[offset:offset + length])
        offset += width


@dataclass
class Counters:
    captured: int = 0  # events handed to Python
    lost: int = 0  # events the mechanism knows it dropped (ring full ...)
    bytes: int = 0  # bytes the watched write() calls asked to write
    # Backends that stamp a whole batch's arrival once (the ring readers): the longest any batch
    # took to hand all its events over, so how late an event's receive time can be.
    batch_ns_max: int = 0
    counted: int = 0  # with --capture count: the writes to the watched fd the mechanism counted
