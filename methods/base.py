"""The Observer contract every interception technique implements.

A backend knows how to watch a process's write() calls on stdout and turn each one into a
MoveEvent. It knows nothing of tables, statistics or files: bench/ does that.
"""
from __future__ import annotations

import os
import select
import subprocess
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Iterator, Sequence

import numpy as np

from methods.options import Options as TechniqueOptions
from methods.protocol import ObserverError, ObserverUnavailable
from methods._kernel.placing import RunningTargetPlacement
from methods._kernel.process import TargetUser, check_pid, die_with_parent
from methods.protocol import (BATCH_EVENTS, LOSS_SOURCES, TARGET_NAMES, WATCHED_FD, Counters, MoveEvent,
                              batch_to_events, events_to_batch)
from methods.spec import SweepSpec

REGISTRY: dict[str, type["Observer"]] = {}


class Observer(RunningTargetPlacement, ABC):
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
    claims: ClassVar[tuple[dict, ...]] = ()  # the article's, made with methods.spec.claim()
    article_name: ClassVar[str | None] = None  # its column in the article's table, if it has one
    # What the mechanism depends on, and what broke or needed care (headers, the Go ABI, static
    # binaries, libc): declared by the backend, shown as declared, never as measured.
    dependence: ClassVar[str] = ""
    # What it can be told (methods/options.py): a frozen dataclass, each default written once.
    # The constructor takes its fields as keywords; a subclass inherits its parent's.
    Options: ClassVar[type[TechniqueOptions]] = TechniqueOptions
    # Derived from Options at registration, for the CLI and describe(): option name -> its
    # argparse settings plus "default", "flag" and "label". Several backends may declare one
    # option, but only with the same settings: one option name means one thing.
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
    # Where run and watch place the target and the observer unless told (bench/run/placement.py):
    # the placement the sweep measured cheaper for this mechanism. "shared" suits a mechanism
    # that stops the target and wakes it (a cross-CPU wake-up is expensive in a VM); "split"
    # one whose consumer works beside a running target and would take its CPU.
    default_placement: ClassVar[str] = "split"
    # What --spin-us live_options_for() adds in placement split (0: none): methods/options.py.
    live_spin_us: ClassVar[int] = 0
    # How the sweep measures it (methods/spec.py; bench/plan.py reads it).
    sweep: ClassVar[SweepSpec] = SweepSpec()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "method", None):
            return
        # The article's claims and column are about the class that declares them: a technique
        # made by subclassing another is judged against no claim unless it declares its own.
        for name, none in (("claims", ()), ("article_name", None)):
            if name not in cls.__dict__:
                setattr(cls, name, none)
        unknown = set(cls.targets) - set(TARGET_NAMES)
        if unknown or not cls.targets:
            raise TypeError(f"{cls.__name__}.targets must name some of {TARGET_NAMES}, not {sorted(unknown)}")
        if cls.loss_source not in (None, *LOSS_SOURCES):
            raise TypeError(f"{cls.__name__}.loss_source must be one of {LOSS_SOURCES} or None")
        if cls.events is Observer.events and cls.batches is Observer.batches:
            raise TypeError(f"{cls.__name__} must give events() or batches(): each is made from the other")
        cls.cli_options = cls.Options.flags()
        for other in REGISTRY.values():
            for name in set(cls.cli_options) & set(other.cli_options):
                if cls.cli_options[name] != other.cli_options[name]:
                    raise TypeError(f"--{name.replace('_', '-')} of {cls.method} differs from the "
                                    f"one {other.method} declares: one option name, one meaning")
        REGISTRY[cls.method] = cls

    def __init__(self, **options) -> None:
        self.options = self.Options.of(options)  # ObserverError, naming the flag, for a bad value
        reason = self.unavailable_reason(**self.options.as_dict())  # of this variant
        if reason:
            raise ObserverUnavailable(reason)
        self.counters = Counters()
        self.pid: int | None = None
        self.process = None  # what launch() returned: a Popen, or the backend's own handle
        self._pidfd: int | None = None
        self._gate: int | None = None
        self._stopping = False
        # Where the target must run (bench/run/placement.py), None: anywhere. Set before launch()
        # or attach(); an attached target gets its own affinity back at close().
        self.target_cpus: set[int] | None = None
        self._affinity_before: dict[int, set[int]] = {}
        # Who a launched program runs as (methods/_kernel/process.py); None: as tapbench itself.
        self.target_user: TargetUser | None = None
        # The descriptor whose write() calls are events; set before launch() or attach().
        self.watched_fd = WATCHED_FD
        # What the target did to the observer's own state (a ring it can write, damaged), in
        # words: the observation ended there, and what it counted since cannot be trusted.
        self.target_damage: str | None = None
        # attach_at_exec found the program already running once its hook was armed: why and
        # what that missed, in words (None: caught at exec, from its first write).
        self.came_late: str | None = None
        # --spin-us, for a backend that offers it (methods/options.py spin_us)
        self.spin_ns = getattr(self.options, "spin_us", 0) * 1000
        self.caught_spinning = 0  # events found while spinning, without a sleep

    # --- what the technique is -------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, **options) -> str | None:
        """None when the mechanism can run here, in the variant the options choose, else a
        one-line reason."""
        return None

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
        run; the constructor makes the same check."""
        cls.Options.of(options)

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


    def attach_at_exec(self, name: str, timeout_s: float, armed=lambda: None) -> int:
        """Be in place first, then watch the first process that execs a program named `name`
        (armed() is called once in place); returns its PID."""
        raise ObserverUnavailable(f"{self.method} cannot catch a program at exec")



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




def baseline_method() -> str:
    """The registered unobserved method ('none')."""
    return next(name for name, cls in REGISTRY.items() if cls.baseline)


def wait_until_exited(observer: Observer, poll_s: float = 0.05) -> None:
    """For mechanisms with nothing to drain: block until the target exits or stop()."""
    while not observer._stopping and not observer.target_exited(poll_s):
        pass

