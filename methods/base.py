"""The Observer contract every interception technique implements.

A backend knows how to watch a process's write() calls on stdout and turn each one into a
MoveEvent. It knows nothing of tables, statistics or files: bench/ does that.
"""
from __future__ import annotations

import os
import re
import select
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, NamedTuple, Sequence

import numpy as np

from methods.errors import ObserverError, ObserverUnavailable
from methods.process import TargetUser, check_pid, die_with_parent

# What the harness may rely on of every backend; the gate's A/B measures the code of another
# commit with this harness only if that commit's methods/ speak the same (bench/worker.py).
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
# The opponent builds a backend may say it sees (bench/targets.py runs them):
#   go    pure Go, static, raw write system calls
#   cgo   the cgo build (dynamic), still raw system calls from Go's os.Stdout
#   libc  the cgo build writing through glibc's write()
TARGET_NAMES = ("go", "cgo", "libc")
# The floor of a mechanism (`--capture count`): the same hook, the same filter, the writes only
# counted, nothing copied or sent; declared with this one spec by every backend that has one.
CAPTURE_OPTION = {"choices": ("full", "count"), "default": None,
                  "help": "count: only count the writes, copying nothing: the mechanism's floor "
                          "(default: full capture)"}

# How a ring-buffer backend's consumer learns of new events, shared by every such backend:
#   poll      nothing wakes it; it drains every --poll-ms: no wake-up work in the target's
#             write path, the cheapest flat out, and a delay of up to one period
#   adaptive  the producer wakes it when it had caught up and sleeps: a short delay live,
#             some work in the target's write path when events are sparse
WAKEUP_OPTION = {"choices": ("adaptive", "poll"), "default": "poll",
                 "help": "adaptive: wake the consumer when it sleeps (live); poll: it drains every "
                         "--poll-ms (cheapest flat out)"}
POLL_MS_OPTION = {"type": int, "default": 10, "help": "consumer polling period in ms (also the "
                                                      "longest adaptive sleep)"}
# Spinning before a sleep, for an observer on CPUs of its own: it looks for the next event (a
# tracer's stop, a ring's record) for up to --spin-us before it sleeps. One that comes meanwhile
# needs no wake-up, which on a VM means waking an idle virtual CPU: tens of µs of delay, and of
# a stopped target's time. It costs the observer's CPU while it spins, so it needs placement
# split: on the target's CPU it would take the target's time.
MAX_SPIN_US = 10_000
# A ring consumer live in placement split spins this long before it sleeps: four periods of the
# article's 20,000 moves/s, so at that rate it seldom sleeps and a move seldom waits for an idle
# virtual CPU to wake.
LIVE_SPIN_US = 200
SPIN_OPTION = {"type": int, "default": 0, "label": "spin {} µs",
               "help": "before sleeping, look for the next event for up to this many µs, so one "
                       "that comes soon needs no wake-up of the observer's CPU; costs that CPU while "
                       f"it spins; needs --placement split (0 = never spin, up to {MAX_SPIN_US})"}


def check_spin(spin_us: int) -> None:
    if not 0 <= spin_us <= MAX_SPIN_US:
        raise ObserverError(f"--spin-us must be between 0 and {MAX_SPIN_US}, got {spin_us}")


def spin_for(look: Callable[[], object], spin_ns: int) -> object:
    """look() until it answers something true or spin_ns have passed; its answer, or None."""
    deadline = time.monotonic_ns() + spin_ns
    while True:
        found = look()
        if found:
            return found
        if time.monotonic_ns() > deadline:
            return None


def check_capture(capture: str | None) -> None:
    if capture not in (None, *CAPTURE_OPTION["choices"]):
        raise ObserverError(f"unknown --capture {capture!r}; choose one of {', '.join(CAPTURE_OPTION['choices'])}")


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
# dearer (bench/power.py); unset, it costs one test a batch.
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


REGISTRY: dict[str, type["Observer"]] = {}


def claim(aspect: str, text: str, value: float | None = None, **when) -> dict:
    """One of the article's claims about a technique. aspect: overhead_ns, ceiling_per_s,
    intrusiveness, privileges or kernel_dependence; value: the number a measurement is held
    against, if the claim has one; when: the options of the variant it is about (none: all)."""
    return {"aspect": aspect, "text": text, "value": value, "when": when}


class Observer(ABC):
    """One interception technique. Use as a context manager so close() always runs.

    Lifecycle: launch(argv) or attach(pid), then iterate events() until the target exits or
    stop() is called, then close(). Subclasses register themselves by defining `method`, and
    the class is the whole description of the technique: bench/ reads what it needs from the
    declarations below and never compares a method's name.
    """

    method: ClassVar[str]
    description: ClassVar[str] = ""
    can_attach: ClassVar[bool] = False
    # The unobserved reference ('none'): every overhead is measured against its runs.
    baseline: ClassVar[bool] = False
    # A reference peer (strace, bpftrace) is measured beside ours, not built by us: a capture
    # it gets wrong is a finding about it, reported, not a failure of the sweep.
    reference_peer: ClassVar[bool] = False
    # Of TARGET_NAMES, the ones whose moves the mechanism can see; the first is its default.
    # On the others it must end with a finding (not_applicable), not a failed capture.
    targets: ClassVar[tuple[str, ...]] = TARGET_NAMES
    loss_source: ClassVar[str | None] = None  # one of LOSS_SOURCES, or None
    claims: ClassVar[tuple[dict, ...]] = ()  # the article's, made with claim()
    article_name: ClassVar[str | None] = None  # its column in the article's table, if it has one
    # What the mechanism depends on, and what broke or needed care (headers, the Go ABI, static
    # binaries, libc): declared by the backend, shown as declared, never as measured.
    dependence: ClassVar[str] = ""
    # Constructor keyword -> argparse settings (plus "default", "flag": True for booleans, and
    # "label": a format naming the variant in results when a numeric option is set);
    # the CLI turns each into --keyword. Several backends may declare one option, but only
    # with the same settings: one option name means one thing.
    cli_options: ClassVar[dict[str, dict]] = {}
    # Whether the mechanism can be in place before a program starts, and catch it at exec by
    # name (attach_at_exec), so that not one of its writes is missed.
    can_catch_exec: ClassVar[bool] = False
    # Whether the processes a launched target forks are watched too (their writes are events
    # of their own PIDs): `run -- CMD` holds such a backend to the kernel's count of the whole
    # tree, and any other to the launched process's own.
    follows_children: ClassVar[bool] = False
    # What of the observer's own state the target can reach in its own memory, in words (the
    # preload ring, mapped there by design), or None: the hostile-target probe attacks it.
    in_target_memory: ClassVar[str | None] = None
    # Options that watch uses to attach when the user did not choose (ptrace: strategy step).
    attach_options: ClassVar[dict[str, object]] = {}
    # Options that watch (live, a move at a time) uses when the user did not choose, where the
    # default suits a flat-out run better (a consumer woken when events come, not polled).
    live_options: ClassVar[dict[str, object]] = {}
    # Where run and watch place the target and the observer unless told (bench/placement.py):
    # the placement the sweep measured cheaper for this mechanism. "shared" suits a mechanism
    # that stops the target and wakes it (a cross-CPU wake-up is expensive in a VM); "split"
    # one whose consumer works beside a running target and would take its CPU.
    default_placement: ClassVar[str] = "split"
    # What --spin-us live_options_for() adds in placement split (0: none): see SPIN_OPTION.
    live_spin_us: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "method", None):
            return
        unknown = set(cls.targets) - set(TARGET_NAMES)
        if unknown or not cls.targets:
            raise TypeError(f"{cls.__name__}.targets must name some of {TARGET_NAMES}, not {sorted(unknown)}")
        if cls.loss_source not in (None, *LOSS_SOURCES):
            raise TypeError(f"{cls.__name__}.loss_source must be one of {LOSS_SOURCES} or None")
        if cls.events is Observer.events and cls.batches is Observer.batches:
            raise TypeError(f"{cls.__name__} must give events() or batches(): each is made from the other")
        for other in REGISTRY.values():
            for name in set(cls.cli_options) & set(other.cli_options):
                if cls.cli_options[name] != other.cli_options[name]:
                    raise TypeError(f"--{name.replace('_', '-')} of {cls.method} differs from the "
                                    f"one {other.method} declares: one option name, one meaning")
        REGISTRY[cls.method] = cls

    def __init__(self) -> None:
        reason = self.unavailable_reason(**self._variant())
        if reason:
            raise ObserverUnavailable(reason)
        self.counters = Counters()
        self.pid: int | None = None
        self.process = None  # what launch() returned: a Popen, or the backend's own handle
        self._pidfd: int | None = None
        self._gate: int | None = None
        self._stopping = False
        # Where the target must run (bench/placement.py), None: anywhere. Set before launch()
        # or attach(); an attached target gets its own affinity back at close().
        self.target_cpus: set[int] | None = None
        self._affinity_before: dict[int, set[int]] = {}
        # Who a launched program runs as (methods/process.py); None: as tapbench itself.
        self.target_user: TargetUser | None = None
        # The descriptor whose write() calls are events; set before launch() or attach().
        self.watched_fd = WATCHED_FD
        # What the target did to the observer's own state (a ring it can write, damaged), in
        # words: the observation ended there, and what it counted since cannot be trusted.
        self.target_damage: str | None = None
        # attach_at_exec found the program already running once its hook was armed: why and
        # what that missed, in words (None: caught at exec, from its first write).
        self.came_late: str | None = None
        self.spin_ns = 0  # --spin-us, for a backend that offers it (SPIN_OPTION)
        self.caught_spinning = 0  # events found while spinning, without a sleep

    # --- what the technique is -------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        """None when the mechanism can run here, in the variant the options choose, else a
        one-line reason."""
        return None

    def _variant(self) -> dict:
        """The options that decide whether this variant can run (set before Observer.__init__)."""
        return {}

    @classmethod
    def attach_unavailable_reason(cls) -> str | None:
        if not cls.can_attach:
            return f"{cls.method} cannot attach to a running process"
        return cls.unavailable_reason()

    @classmethod
    def live_options_for(cls, placement: str) -> dict[str, object]:
        """The options watch and the duel use live, unless the user chose: live_options, and
        in placement split, where the observer has CPUs of its own, a spin before each sleep."""
        spin = {"spin_us": cls.live_spin_us} if cls.live_spin_us and placement == "split" else {}
        return cls.live_options | spin

    @classmethod
    def watch_options(cls) -> dict[str, object]:
        """Options `watch` and the duel use, unless the user chose, where this machine allows
        them (eBPF: the CO-RE loader, which starts a new process without compiling)."""
        return {}

    @classmethod
    def check_options(cls, **options) -> None:
        """Raise ObserverError, naming the flag, for option values this backend cannot use.
        The CLI calls it before anything runs, so a bad value is one ERROR line, not a failed
        run; constructors call it too."""

    @classmethod
    def program_text(cls, pid: int, **options) -> str | None:
        """The program this backend would load into the kernel to watch pid (BPF C, a
        bpftrace script ...), or None if it loads none. `--ebpf` prints it."""
        return None

    @classmethod
    def leftovers(cls) -> set[str]:
        """What of this mechanism exists on the machine now that could outlive a killed
        tapbench (segments, BPF programs, stopped processes), one string each; the SIGKILL
        probe compares it before and after."""
        return set()

    @classmethod
    def clean_leftovers(cls) -> list[str]:
        """Remove what a killed run left behind and no one uses; one sentence per removal."""
        return []

    @classmethod
    def describe(cls) -> dict:
        """The results JSON's `methods` entry: what tables need to know without this code."""
        return {"description": cls.description, "baseline": cls.baseline,
                "reference_peer": cls.reference_peer, "targets": list(cls.targets),
                "can_attach": cls.can_attach, "can_catch_exec": cls.can_catch_exec,
                "follows_children": cls.follows_children,
                "attach_unavailable": None if cls.can_attach else cls.attach_unavailable_reason(),
                "loss_source": cls.loss_source, "claims": list(cls.claims),
                "default_placement": cls.default_placement, "article_name": cls.article_name,
                "dependence": cls.dependence,
                "default_options": {name: spec.get("default") for name, spec in cls.cli_options.items()},
                # how a numeric option names its variant in a label ("spin {} µs")
                "option_labels": {name: spec["label"] for name, spec in cls.cli_options.items() if "label" in spec},
                "live_options": dict(cls.live_options), "live_spin_us": cls.live_spin_us,
                # what `watch` loads on the machine that measured (eBPF: CO-RE where it can)
                "watch_options": cls.watch_options(),
                # what `watch --pid` switches to when the default cannot attach (ptrace: step)
                "attach_options": dict(cls.attach_options),
                "has_program": cls.program_text.__func__ is not Observer.program_text.__func__}

    def facts(self) -> dict:
        """What the mechanism says about itself after a run (hook, its own counters ...), for
        the results JSON under the method's name."""
        return {}

    # --- starting -----------------------------------------------------------------------
    def launch(self, argv: Sequence[str], *, stdout=subprocess.DEVNULL, stderr=None,
               env: dict | None = None):
        """Start argv held at a gate, and put it under observation before it can write anything.

        The child first runs the backend's preparation (_child_steps: a seccomp filter ...),
        then `sh`, which waits for one line on its stdin (the gate pipe) and then execs argv in
        place, so its PID, which the mechanism is pointed at, stays the same. release() opens
        the gate. Any program can be launched this way, not only the opponent; it gets
        /dev/null as stdin. Returns a Popen, or what _own_process makes of it.
        """
        gate_read, self._gate = os.pipe()
        steps = [die_with_parent, *self._child_steps()]
        user = self.target_user
        if user is not None and not user.is_current and type(self)._launcher is Observer._launcher:
            user.check_can_switch()
            # After the backend's steps, which may need root; then PR_SET_PDEATHSIG again: the
            # kernel clears it when the credentials change.
            steps += [user.become, die_with_parent]
        target_env = self._target_env()
        environment = dict(os.environ if env is None else env)
        # The gate shell itself must not get these (an LD_PRELOAD hook would load into it):
        # it carries them under other names and sets them for the exec only.
        environment.update({f"TAPBENCH_EXEC_{name}": value for name, value in target_env.items()})
        assignments = "".join(f'{name}="$TAPBENCH_EXEC_{name}" ' for name in target_env)
        gate_script = f'read -r _; {assignments}exec "$0" "$@" </dev/null'
        command = ["/bin/sh", "-c", gate_script, *argv]
        if self.target_cpus is not None:
            if type(self)._launcher is Observer._launcher:  # the child is the target to be
                steps.append(lambda cpus=frozenset(self.target_cpus): os.sched_setaffinity(0, cpus))
            else:  # the child is the observer's program (strace): only what it runs is placed
                command = ["taskset", "-c", ",".join(map(str, sorted(self.target_cpus))), *command]
        try:
            popen = subprocess.Popen(
                self._launcher(command),
                stdin=gate_read, stdout=stdout, stderr=stderr, env=environment,
                pass_fds=self._pass_fds, preexec_fn=lambda: [step() for step in steps])
        finally:
            os.close(gate_read)
        self.process = self._own_process(popen)
        try:
            self._begin(self._target_pid(popen))
        except BaseException:
            self._kill_launched()
            raise
        return self.process

    def _child_steps(self) -> list[Callable[[], None]]:
        """Work for the launched child between fork and exec (built here, in the parent; run
        there). The base makes the child die with tapbench; backends add theirs."""
        return []

    def _target_env(self) -> dict[str, str]:
        """Environment variables for the launched program only, not for its gate shell."""
        return {}

    def _own_process(self, popen: subprocess.Popen):
        """What launch() returns and close() reaps. A backend that must reap the child itself
        (a tracer: Popen's waitpid would swallow its ptrace stops) wraps it here."""
        return popen

    # Hooks for observers that are themselves a program wrapping the target (strace ...).
    _pass_fds: tuple[int, ...] = ()

    def _launcher(self, command: list[str]) -> list[str]:
        return command

    def _target_pid(self, process: subprocess.Popen) -> int:
        return process.pid

    def release(self) -> None:
        """Let a launched target run (it is waiting at the gate)."""
        if self._gate is not None:
            os.write(self._gate, b"go\n")
            os.close(self._gate)
            self._gate = None

    def attach(self, pid: int) -> None:
        reason = self.attach_unavailable_reason()
        if reason:
            raise ObserverUnavailable(reason)
        check_pid(pid)
        if self.target_cpus is not None:
            self._place_running(pid)
        self._begin(pid)

    def _place_running(self, pid: int) -> None:
        """Move every thread of a running target onto target_cpus (the threads it starts later
        inherit it), keeping what each had to put it back at close(). The threads are listed
        again until a listing finds none unmoved: one started by a thread not yet moved would
        otherwise run where it was."""
        while new := _threads_of(pid) - set(self._affinity_before):
            for tid in new:
                try:
                    self._affinity_before[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, self.target_cpus)
                except ProcessLookupError:
                    self._affinity_before.setdefault(tid, set())  # ended meanwhile: not listed again
                except PermissionError:
                    self._restore_placement_of(pid)
                    raise ObserverError(f"cannot move PID {pid} to CPU {sorted(self.target_cpus)}: permission "
                                        "denied (needs CAP_SYS_NICE); watch it with --placement free") from None

    def attach_at_exec(self, name: str, timeout_s: float, armed=lambda: None) -> int:
        """Be in place first, then watch the first process that execs a program named `name`
        (armed() is called once in place); returns its PID."""
        raise ObserverUnavailable(f"{self.method} cannot catch a program at exec")

    def _restore_placement(self) -> None:
        self._restore_placement_of(self.pid)

    def _restore_placement_of(self, pid: int) -> None:
        """Every thread of the attached target back where it was; one started meanwhile gets
        what its process's first thread had. Listed again until a listing finds none left to
        put back, as in _place_running."""
        if not self._affinity_before:
            return
        leader = self._affinity_before.get(pid) or next((cpus for cpus in self._affinity_before.values() if cpus),
                                                        None)
        done: set[int] = set()
        while todo := (_threads_of(pid) | set(self._affinity_before)) - done:
            for tid in todo:
                cpus = self._affinity_before.get(tid) or leader
                try:
                    if cpus:
                        os.sched_setaffinity(tid, cpus)
                except ProcessLookupError:
                    pass  # ended
            done |= todo
        self._affinity_before = {}

    def _begin(self, pid: int) -> None:
        if self.spin_ns and (self.target_cpus is None or os.sched_getaffinity(0) & self.target_cpus):
            raise ObserverError("--spin-us needs the observer on CPUs the target does not use "
                                "(--placement split): spinning on the target's CPU takes its time")
        self.pid = pid
        # A pidfd becomes readable when the process exits, whether it is our child or not.
        self._pidfd = os.pidfd_open(pid)
        self._observe(pid)

    @abstractmethod
    def _observe(self, pid: int) -> None:
        """Put the mechanism in place on pid (already started, still gated)."""

    # --- events -------------------------------------------------------------------------
    # A backend gives one of the two; each is made from the other. A mechanism that reads many
    # writes at once (a ring) gives batches(); one that stops the target at each (a tracer)
    # gives events().
    def batches(self) -> Iterator[np.ndarray]:
        """Yield EVENT arrays until the target has exited (and everything is drained) or
        stop(). Made from events() unless the backend reads batches itself."""
        pending: list[MoveEvent] = []
        for event in self.events():
            pending.append(event)
            if len(pending) == BATCH_EVENTS:
                yield events_to_batch(pending)
                pending = []
        if pending:
            yield events_to_batch(pending)

    def events(self) -> Iterator[MoveEvent]:
        """Yield events until the target has exited (and everything is drained) or stop(),
        one at a time: for what needs them so (watch, the duel's spy). Made from batches()
        unless the backend hands events over one at a time itself."""
        for batch in self.batches():
            yield from batch_to_events(batch)

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

    def not_applicable(self, expected: int) -> str | None:
        """After events(): why this mechanism could not see the target's moves at all (a
        finding to report, not a failed capture), or None."""
        return None

    def stop(self) -> None:
        """Ask events() to finish after the events already received. Safe from a signal handler."""
        self._stopping = True

    def target_exited(self, timeout_s: float = 0.0) -> bool:
        if self._pidfd is None:
            return True
        readable, _, _ = select.select([self._pidfd], [], [], timeout_s)
        return bool(readable)

    # --- cleanup ------------------------------------------------------------------------
    def close(self) -> None:
        """Detach and release everything. Idempotent; runs on every exit path.

        A target we launched does not outlive the observation; one we attached to is left
        running as it was found.
        """
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None
        if self._affinity_before:
            self._restore_placement()
        self._kill_launched()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _kill_launched(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _threads_of(pid: int) -> set[int]:
    """The thread IDs of a process now (none once it is gone)."""
    try:
        return {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
    except FileNotFoundError:
        return set()


def baseline_method() -> str:
    """The registered unobserved method ('none')."""
    return next(name for name, cls in REGISTRY.items() if cls.baseline)


def wait_until_exited(observer: Observer, poll_s: float = 0.05) -> None:
    """For mechanisms with nothing to drain: block until the target exits or stop()."""
    while not observer._stopping and not observer.target_exited(poll_s):
        pass

