"""LD_PRELOAD observer: preload/hook.c interposes libc write() inside the target and streams
each write to stdout through a shared-memory ring (preload/ring.h) that this side drains.

Launch only: a library can be preloaded only when the program starts. What the hook cannot
see is reported, not hidden:
  - a static binary never loads it ("static binary: LD_PRELOAD not applied");
  - Go's own os.Stdout issues raw system calls, so the hook is loaded but sees nothing
    ("0 of N moves passed through libc write()").
"""
from __future__ import annotations

import ctypes
import os
import secrets
from multiprocessing import shared_memory
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.truth import CAPTURE_BYTES
from methods.base import WATCHED_FD, MoveEvent, Observer, ObserverError

HOOK_LIBRARY = Path(__file__).resolve().parent.parent / "preload" / "libtapbench_hook.so"
RING_MAGIC, RING_VERSION = 0x52425054, 1
DEFAULT_SLOTS = 1 << 20  # 64 MiB: a million flat-out moves fit even if the consumer lags

# Mirror of preload/ring.h, checked against the library's tapbench_ring_layout at start-up.
HEADER = np.dtype({
    "names": ["magic", "version", "slot_count", "slot_size", "hook_pid", "claimed", "consumed",
              "lost"],
    "formats": ["<u4", "<u4", "<u4", "<u4", "<u4", "<u8", "<u8", "<u8"],
    "offsets": [0, 4, 8, 12, 16, 64, 128, 192],
    "itemsize": 256,
})
SLOT = np.dtype([("published", "<u8"), ("ts_ns", "<u8"), ("count", "<u8"), ("tid", "<u4"),
                 ("copied", "<u4"), ("head", f"V{CAPTURE_BYTES}")])
LAYOUT_FIELDS = ["header_size", "slot_size", "capture_bytes", "watched_fd", "magic", "version",
                 "off_slot_count", "off_hook_pid", "off_claimed", "off_consumed", "off_lost",
                 "off_published", "off_ts_ns", "off_count", "off_tid", "off_copied",
                 "off_head"]


def python_layout() -> dict[str, int]:
    header, slot = HEADER.fields, SLOT.fields
    return {
        "header_size": HEADER.itemsize, "slot_size": SLOT.itemsize, "capture_bytes": CAPTURE_BYTES,
        "watched_fd": WATCHED_FD, "magic": RING_MAGIC, "version": RING_VERSION,
        **{f"off_{name}": header[name][1] for name in
           ("slot_count", "hook_pid", "claimed", "consumed", "lost")},
        **{f"off_{name}": slot[name][1] for name in
           ("published", "ts_ns", "count", "tid", "copied", "head")},
    }


def c_layout() -> dict[str, int]:
    """The layout the compiled hook was built with. Loading it here is harmless: without
    $TAPBENCH_SHM its constructor does nothing, and RTLD_LOCAL does not interpose our write()."""
    values = (ctypes.c_uint32 * len(LAYOUT_FIELDS)).in_dll(ctypes.CDLL(str(HOOK_LIBRARY)),
                                                           "tapbench_ring_layout")
    return dict(zip(LAYOUT_FIELDS, values))


class PreloadObserver(Observer):
    method = "preload"
    can_attach = False
    description = "LD_PRELOAD hook on libc write(), events through a shared-memory ring"
    cli_options = {"ring_slots": {"type": int, "default": DEFAULT_SLOTS,
                                  "help": "ring size in 64-byte slots, a power of two"}}
    # The gate shell must not load the hook itself: only the program it execs gets LD_PRELOAD.
    _gate_script = 'read -r _; LD_PRELOAD="$TAPBENCH_PRELOAD" exec "$0" "$@" </dev/null'

    def __init__(self, ring_slots: int = DEFAULT_SLOTS, poll_ms: int = 5) -> None:
        if ring_slots < 2 or ring_slots & (ring_slots - 1) or ring_slots > 1 << 26:
            raise ObserverError(f"--ring-slots must be a power of two from 2 to {1 << 26}, "
                                f"got {ring_slots}")
        super().__init__()
        if python_layout() != c_layout():
            raise ObserverError(f"{HOOK_LIBRARY.name} was built with another ring layout than "
                                "methods/preload.py mirrors: rebuild it (make build)")
        self.ring_slots = ring_slots
        self.poll_ms = poll_ms
        self.segment: shared_memory.SharedMemory | None = None
        self.hook_loaded = False
        self.hook_writes_seen = 0

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not HOOK_LIBRARY.exists():
            return f"{HOOK_LIBRARY} is not built: run `make build`"
        return None

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        return "LD_PRELOAD works only at launch: a running process cannot be made to preload"

    def launch(self, argv, *, env: dict | None = None, **kwargs):
        size = HEADER.itemsize + self.ring_slots * SLOT.itemsize
        # A random name and mode 0600 (SharedMemory's default): no other user can open it,
        # and no one can guess it.
        self.segment = shared_memory.SharedMemory(name=f"tapbench-{secrets.token_hex(12)}",
                                                  create=True, size=size)
        buffer = np.frombuffer(self.segment.buf, dtype=np.uint8)
        self._header = buffer[:HEADER.itemsize].view(HEADER)
        self._slots = buffer[HEADER.itemsize:].view(SLOT)
        self._header[0] = (RING_MAGIC, RING_VERSION, self.ring_slots, SLOT.itemsize, 0, 0, 0, 0)
        environment = dict(os.environ if env is None else env)
        environment.update(TAPBENCH_SHM="/" + self.segment.name, TAPBENCH_PRELOAD=str(HOOK_LIBRARY))
        return super().launch(argv, env=environment, **kwargs)

    def _observe(self, pid: int) -> None:
        pass  # the hook maps the ring itself when the target starts

    def _take(self) -> np.ndarray:
        """Copy of the published slots not yet consumed, in sequence order; frees them."""
        header = self._header[0]
        consumed, claimed = int(header["consumed"]), int(header["claimed"])
        count = min(claimed - consumed, self.ring_slots)
        if count <= 0:
            return np.empty(0, dtype=SLOT)
        start = consumed % self.ring_slots
        first = self._slots[start:start + count]
        batch = first if first.size == count else np.concatenate([first, self._slots[:count - first.size]])
        expected = np.arange(consumed + 1, consumed + count + 1, dtype=np.uint64)
        unpublished = np.flatnonzero(batch["published"] != expected)
        if unpublished.size:
            batch = batch[:unpublished[0]]  # a writer is still filling this slot
        batch = batch.copy()
        self._header["consumed"] = consumed + batch.size
        return batch

    def events(self) -> Iterator[MoveEvent]:
        # Nothing wakes us on new slots: sleep a polling period, or less if the target exits.
        yield from self._drain_batches(self._take, lambda: self.target_exited(self.poll_ms / 1000))
        header = self._header[0]
        # A slot claimed by a thread that died before publishing it can never be read.
        self.counters.lost = int(header["lost"]) + int(header["claimed"]) - int(header["consumed"])
        self.hook_writes_seen = int(header["claimed"]) + int(header["lost"])
        self.hook_loaded = int(header["hook_pid"]) == self.pid

    def not_applicable(self, expected: int) -> str | None:
        if not self.hook_loaded:
            return "static binary: LD_PRELOAD not applied"
        if self.hook_writes_seen == 0 and expected:
            return f"0 of {expected} moves passed through libc write()"
        return None

    def close(self) -> None:
        if self.segment is not None:
            segment, self.segment = self.segment, None
            segment.unlink()  # first: the name is gone whatever happens next
            # The numpy views export the segment's buffer: drop them before closing it.
            self._header = self._slots = None
            segment.close()
        super().close()
