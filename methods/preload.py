"""LD_PRELOAD observer: preload/hook.c interposes libc write() inside the target and streams
each write to stdout through a shared-memory ring (preload/ring.h) that this side drains.

Launch only: a library can be preloaded only when the program starts. The ring is a memfd
sealed against shrinking and growing, handed to the hook as an inherited descriptor: no name
reaches it, and the target, which maps it by design, cannot cut it short under this reader
(CPython has no way back from a SIGBUS inside a numpy view). Everything read from it is
checked (positions, counters, lengths, stamps); what the target damaged ends the watch with a
finding (target_damage), the moves before it kept. What the hook cannot see is reported, not
hidden:
  - a static binary never loads it ("static binary: LD_PRELOAD not applied");
  - Go's own os.Stdout issues raw system calls, so the hook is loaded but sees nothing
    ("0 of N writes passed through libc write()").
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np


from methods.base import Observer, ObserverError

from methods import options as shared
from methods.options import LIVE_SPIN_US, Options, option
from methods.protocol import BATCH_EVENTS, CAPTURE_BYTES, EVENT
from methods._kernel.preload_ring import (CLAIMED_WORD, CONSUMED_WORD, COUNTERS, FASTEST_WRITE_NS, FUTEX_WAIT,
                                          HEADER, HOOK_LIBRARY, LARGEST_WRITE, RING_FD_LOWEST, RING_FD_VARIABLE,
                                          RING_MAGIC, RING_VERSION, SEGMENT_GLOB, SLOT, SYS_FUTEX, Timespec,
                                          c_layout, clock_pair, hook_library, is_static_executable, mapped_paths,
                                          python_layout, tsc_unusable_reason)
from methods._kernel.rings import RingConsumer
from methods.spec import SweepSpec, claim

MAX_SLOTS = 1 << 26


def _ring_slots_problem(slots: int) -> str | None:
    if slots < 2 or slots & (slots - 1) or slots > MAX_SLOTS:
        return f"--ring-slots must be a power of two from 2 to {MAX_SLOTS}, got {slots}"
    return None


@dataclass(frozen=True)
class PreloadOptions(Options):
    """The preload ring and its consumer: also zpoline's and SUD's (methods/_kernel/inprocess.py)."""
    # 64 MiB: a million flat-out moves fit even if the consumer lags
    ring_slots: int = option(1 << 20, "ring size in 64-byte slots, a power of two", type=int,
                             valid=_ring_slots_problem)
    wakeup: str = shared.wakeup()
    poll_ms: int = shared.poll_ms()
    capture: str | None = shared.capture()
    spin_us: int = shared.spin_us()


class PreloadObserver(RingConsumer, Observer):
    method = "preload"
    can_attach = False
    description = "LD_PRELOAD hook on libc write(), events through a shared-memory ring"
    article_name = "LD_PRELOAD hook"
    dependence = ("only dynamically linked programs that write through libc's write(): static Go and "
                  "Go's own writes are never seen; the ring layout is shared with the C hook and "
                  "checked at start")
    targets = ("libc",)  # only writes that go through a dynamically linked libc's write()
    loss_source = "ring counter"
    library: ClassVar[Path] = HOOK_LIBRARY  # what is preloaded into the target
    in_target_memory = "the ring"
    # a ring of a million slots: a flat-out run of the sweep never fills it
    sweep = SweepSpec(options={"ring_slots": 1 << 20}, primary_group="preload")
    claims = (
        claim("overhead_ns", "~100 ns", 100),
        claim("intrusiveness", "medium (must be preloaded)"),
        claim("kernel_dependence", "medium"),
    )
    Options = PreloadOptions
    options: PreloadOptions
    live_options = {"wakeup": "adaptive"}
    live_spin_us = LIVE_SPIN_US

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.capture, self.wakeup = self.options.capture, self.options.wakeup
        self._libc = ctypes.CDLL(None, use_errno=True)
        if python_layout() != c_layout(self.library):
            raise ObserverError(f"{self.library.name} was built with another ring layout than "
                                "methods/preload.py mirrors: rebuild it (make build)")
        self.ring_slots = self.options.ring_slots
        self.poll_ms = self.options.poll_ms
        self._ring: mmap.mmap | None = None  # the memfd, mapped here
        self._ring_fd: int | None = None  # its descriptor, until the target has inherited it
        # The reader's own position: the header's `consumed` is only what producers are told.
        self._consumed = 0
        self._claimed_seen = 0  # the producers' counter as last read: it never goes back
        self._damage_found: str | None = None  # what a check found wrong in the ring, if anything
        self._launched_ns = 0
        self.hook_loaded = False
        self.hook_writes_seen = 0
        self.failed_writes = 0  # writes to stdout that returned an error: nothing was written
        self._static = False  # the launched program is a static ELF: the loader never runs
        # The hook stamps with the TSC where it is a trustworthy clock: cheaper than
        # clock_gettime. Its ticks become CLOCK_MONOTONIC ns here, interpolated between a
        # clock pair taken at launch and one taken after each batch was published.
        self.tsc_unusable = tsc_unusable_reason()
        self._first_pair: tuple[int, int] | None = None
        self.missed_wakeups = 0  # adaptive: sleeps that ended at the timeout with a slot waiting

    def facts(self) -> dict:
        return {"hook_loaded": self.hook_loaded, "hook_writes_seen": self.hook_writes_seen, "ring": "sealed memfd",
                "failed_writes": self.failed_writes, "missed_wakeups": self.missed_wakeups,
                "batches_caught_spinning": self.caught_spinning,
                "stamp": "TSC" if self.tsc_unusable is None else f"clock_gettime: {self.tsc_unusable}"}

    @classmethod
    def leftovers(cls) -> set[str]:
        return set(glob.glob(SEGMENT_GLOB))

    @classmethod
    def clean_leftovers(cls) -> list[str]:
        """Segments no process maps: left by a run SIGKILLed before Python's resource
        tracker could remove them."""
        segments = sorted(cls.leftovers())
        in_use = mapped_paths() if segments else set()
        removed = []
        for segment in segments:
            if segment in in_use:
                continue
            try:
                os.unlink(segment)
            except FileNotFoundError:
                continue
            removed.append(f"removed {segment} (no process had it mapped)")
        return removed

    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        if not cls.library.exists():
            return f"{cls.library} is not built: run `make build`"
        return None

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        return "LD_PRELOAD works only at launch: a running process cannot be made to preload"

    def launch(self, argv, **kwargs):
        size = HEADER.itemsize + self.ring_slots * SLOT.itemsize
        # An anonymous memfd: no name in /dev/shm that anyone could open, or that a killed run
        # would leave behind. Sealed before the target exists: no one can shrink it (every
        # mapper would take a SIGBUS) or grow it, and no seal can be added after ours.
        fd = os.memfd_create("tapbench-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
            self._ring = mmap.mmap(fd, size)
            # The target inherits it (pass_fds) under a number that is never the watched
            # descriptor or a standard one, and above those a program opens first (the lowest
            # free number), so that its own descriptors keep the numbers they have bare.
            self._ring_fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, max(RING_FD_LOWEST, self.watched_fd + 1))
        finally:
            os.close(fd)
        self._pass_fds = (self._ring_fd,)
        buffer = np.frombuffer(self._ring, dtype=np.uint8)
        self._header = buffer[:HEADER.itemsize].view(HEADER)
        self._words = buffer[:HEADER.itemsize].view("<u8")
        sleeping_offset = HEADER.fields["consumer_sleeping"][1]
        self._sleeping_word = buffer.ctypes.data + sleeping_offset
        self._sleeping = buffer[sleeping_offset:sleeping_offset + 4].view("<u4")
        self._slots = buffer[HEADER.itemsize:].view(SLOT)
        self._header[0] = (RING_MAGIC, RING_VERSION, self.ring_slots, SLOT.itemsize, 0,
                           int(self.capture == "count"), int(self.wakeup == "adaptive"),
                           int(self.tsc_unusable is None), self.watched_fd, 0, 0, 0, 0, 0, 0, 0, 0)
        self._fixed = self._header[0][["magic", "version", "slot_count", "slot_size", "count_only",
                                       "wake_consumer", "stamp_tsc", "watched_fd"]].copy()
        self._first_pair = clock_pair()
        self._launched_ns = time.monotonic_ns()
        self._static = is_static_executable(argv[0])
        # A launch that fails keeps this frame alive in its traceback: a view left here would
        # stop close() from unmapping the ring (BufferError).
        del buffer
        try:
            return super().launch(argv, **kwargs)
        finally:
            os.close(self._ring_fd)  # the target holds its copy now
            self._ring_fd = None

    def _target_env(self) -> dict[str, str]:
        # Only the program gets it: a gate shell that loaded the hook would claim the ring.
        return {"LD_PRELOAD": str(self.library), RING_FD_VARIABLE: str(self._ring_fd)}

    def _observe(self, pid: int) -> None:
        pass  # the hook maps the ring itself when the target starts

    def _damaged(self, what: str) -> np.ndarray:
        """Note what the target did to the ring (the first thing found), and end the
        observation: nothing read from the ring after it can be trusted."""
        if self.target_damage is None:
            self.target_damage = f"the target damaged the ring: {what}"
        self._stopping = True
        return np.empty(0, dtype=SLOT)

    def _take(self) -> np.ndarray:
        """The published slots not yet consumed, at most BATCH_EVENTS, as an EVENT batch, each
        checked; frees them. Empty once the ring was found damaged."""
        if self.target_damage is not None:
            return np.empty(0, dtype=EVENT)
        # Two words, not the structured header: this is on the live latency's path.
        consumed, claimed = self._consumed, int(self._words[CLAIMED_WORD])
        if claimed < self._claimed_seen or claimed - consumed > self.ring_slots:
            # Not a count the producers can have made; the slots' own publication marks still
            # say which were published before: those are read, then the run ends.
            self._damage_found = (f"its claimed count went from {self._claimed_seen} to {claimed}, with "
                                  f"{consumed} read and {self.ring_slots} slots")
            claimed = consumed + self.ring_slots
        self._claimed_seen = claimed
        count = min(claimed - consumed, BATCH_EVENTS)
        records = np.empty(0, dtype=SLOT)
        if count > 0:
            start = consumed % self.ring_slots
            first = self._slots[start:start + count]
            records = first if first.size == count else np.concatenate([first, self._slots[:count - first.size]])
            expected = np.arange(consumed + 1, consumed + count + 1, dtype=np.uint64)
            unpublished = np.flatnonzero(records["published"] != expected)
            if unpublished.size:
                records = records[:unpublished[0]]  # a writer is still filling this slot
        # Copied out once, into the batch; what is checked is that copy, which is what is used:
        # the target cannot change it afterwards.
        batch = self._event_batch(records, check=self._check_slots)
        if self._damage_found:
            self._damaged(self._damage_found)
        self._consumed = consumed + batch.size
        self._words[CONSUMED_WORD] = self._consumed  # for the producers; never read back
        return batch

    def _check_slots(self, batch: np.ndarray, counts: np.ndarray) -> int:
        """How many of the batch's records, from the first, are what the hook writes: every
        stamp was taken after launch and before now (one outside that window is not the hook's,
        and no latency is computed from it), and no more was copied than written or fits."""
        first_tsc, first_ns = self._first_pair
        low, high = (first_tsc, clock_pair()[0]) if self.tsc_unusable is None else (first_ns, time.monotonic_ns())
        stamps = batch["ts_ns"].view(np.uint64)
        bad = np.flatnonzero((batch["length"] > CAPTURE_BYTES) | (batch["length"] > counts)
                             | (counts > LARGEST_WRITE) | (stamps < low) | (stamps > high))
        if not bad.size:
            return batch.size
        record = bad[0]
        self._damage_found = self._damage_found or (
            f"slot {self._consumed + int(record)} holds what the hook never writes ({int(batch['length'][record])} "
            f"bytes copied of a {int(counts[record])}-byte write, stamped {int(stamps[record])} in a run from "
            f"{low} to {high})")
        return int(record)

    def _stamps_ns(self, ticks: np.ndarray) -> np.ndarray:
        """TSC ticks to CLOCK_MONOTONIC ns. Every tick was read after the launch pair and
        before the pair taken now (_take checked it), so this interpolates: its error is about
        a pair's own uncertainty (tens of ns), whatever the run's length."""
        if self.tsc_unusable is not None or not ticks.size:
            return ticks
        first_tsc, first_ns = self._first_pair
        now_tsc, now_ns = clock_pair()
        ns_per_tick = (now_ns - first_ns) / (now_tsc - first_tsc)
        return np.rint(first_ns + (ticks.astype(np.int64) - first_tsc) * ns_per_tick).astype(np.uint64)

    def batches(self) -> Iterator[np.ndarray]:
        # poll: nothing wakes us on new slots: sleep a polling period, or less if the target
        # exits. adaptive: sleep on the futex the hook wakes, a period at most.
        wait = self._sleep_until_woken if self.wakeup == "adaptive" else \
            (lambda: self.target_exited(self.poll_ms / 1000))
        # Every slot is attributed to the process we launched: the only one the hook records in
        # (a fork()ed child stops recording, an exec'd one cannot reach the ring), and never to
        # what the ring itself says.
        yield from self._drain_batches(self._take, wait, self._pending)
        self._read_counters()

    def _read_counters(self) -> None:
        """The hook's counters, once the target is done, each checked against what is
        possible; a damaged ring leaves them unknown (None), never an impossible figure."""
        header = self._header[0].copy()
        bound = max(time.monotonic_ns() - self._launched_ns, 0) // FASTEST_WRITE_NS
        changed = [name for name in self._fixed.dtype.names if header[name] != self._fixed[name]]
        hook_pid = int(header["hook_pid"])
        claimed = int(header["claimed"])
        if changed:
            self._damaged(f"its header's {', '.join(changed)} changed")
        elif hook_pid not in (0, self.pid):
            self._damaged(f"it names PID {hook_pid} as the hook's process, not {self.pid}")
        elif claimed < self._consumed or claimed - self._consumed > self.ring_slots:
            self._damaged(f"its claimed count ({claimed}) is not within the ring from {self._consumed}")
        elif max(int(header[name]) for name in COUNTERS) > bound:
            counted = ", ".join(f"{name} {int(header[name])}" for name in COUNTERS)
            self._damaged(f"a counter ({counted}) grew faster than one write per {FASTEST_WRITE_NS} ns since launch")
        self.hook_loaded = hook_pid == self.pid
        if self.target_damage is not None:
            self.counters.lost = None
            self.hook_writes_seen = self.failed_writes = None
            return
        # A slot claimed by a thread that died before publishing it can never be read.
        self.counters.lost = int(header["lost"]) + claimed - self._consumed
        self.hook_writes_seen = claimed + int(header["lost"]) + int(header["counted"])
        self.failed_writes = int(header["failed_writes"])
        self.counters.counted = int(header["counted"])

    def _sleep_until_woken(self) -> None:
        """Announce the sleep, look once more (a slot published meanwhile would not wake us),
        then wait on the futex word for the hook's FUTEX_WAKE, at most one polling period."""
        hook_library().tapbench_announce_sleep(ctypes.c_void_p(self._sleeping_word))
        if self._pending():
            self._sleeping[0] = 0
            return
        timeout = Timespec(self.poll_ms // 1000, self.poll_ms % 1000 * 1_000_000)
        slept = self._libc.syscall(SYS_FUTEX, ctypes.c_void_p(self._sleeping_word), FUTEX_WAIT, 1,
                                   ctypes.byref(timeout), None, 0)
        self._sleeping[0] = 0
        if slept == 0:
            return
        error = ctypes.get_errno()
        if error == errno.ETIMEDOUT and self._pending():
            self.missed_wakeups += 1  # a slot waited for the timeout: the hook did not wake us
        elif error not in (errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR):
            # A wait that fails at once would turn the consumer into a silent busy loop.
            raise OSError(error, f"futex wait on the preload ring: {os.strerror(error)}")

    def _pending(self) -> bool:
        consumed = self._consumed
        return int(self._slots[consumed % self.ring_slots]["published"]) == consumed + 1

    def not_applicable(self, expected: int) -> str | None:
        """Decided from the program, not from what the hook did: a hook that failed to load
        into a dynamically linked program is a failed capture, not a finding."""
        if not self.hook_loaded:
            return "static binary: LD_PRELOAD not applied" if self._static else None
        if self.hook_writes_seen == 0 and expected:
            return f"0 of {expected} writes to the watched descriptor passed through libc write()"
        return None

    def close(self) -> None:
        if self._ring_fd is not None:  # a launch that failed before the target inherited it
            os.close(self._ring_fd)
            self._ring_fd = None
        if self._ring is not None:
            ring, self._ring = self._ring, None
            # The numpy views export the mapping's buffer: drop them before closing it.
            self._header = self._words = self._sleeping = self._slots = None
            ring.close()
        super().close()


