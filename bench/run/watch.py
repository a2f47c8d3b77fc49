"""`tapbench watch`: put one technique on a process (launched, attached by PID, or caught by
name, at exec where the mechanism allows it) and print its moves live, the article's way."""
from __future__ import annotations

import gc
import signal
import sys
import time
from collections import Counter

import psutil

from bench.run.placement import observer_placed
from methods.base import ObserverError
from methods.protocol import MOVES
from methods._kernel.process import TargetUser, find_pid_by_name


def say(line: str) -> None:
    """One line on stderr, in one write(): the watched program writes to the same stderr while
    it runs, and print() writes the line and its newline apart, so the program's own line
    could land between the two."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def running(name: str) -> int | None:
    """The PID of the one running process named `name`, None if there is none."""
    try:
        return find_pid_by_name(name)
    except ObserverError as error:
        if "no running process" in str(error):
            return None
        raise


def wait_for_name(name: str, wait_s: float) -> int:
    """The PID of the one process named `name`, polling /proc up to wait_s seconds for it to
    start; says how long after its start the attach came, the moves before that are missed."""
    deadline = time.monotonic() + wait_s
    if wait_s:
        say(f"waiting for a process named {name} (polling /proc)")
    while (pid := running(name)) is None:
        if time.monotonic() >= deadline:
            hint = ", or wait for it with --wait SECONDS" if wait_s == 0 else f" within {wait_s:g} s"
            raise ObserverError(f"no running process named {name!r}{hint}")
        time.sleep(0.001)
    if wait_s:
        late_ms = (time.time() - psutil.Process(pid).create_time()) * 1000
        say(f"found PID {pid} about {late_ms:.0f} ms after it started (process start times are "
            f"kept to 10 ms): what it wrote before the attach is missed")
    return pid


def watch(observer_class, options: dict, placement: str, *, pid: int | None, name: str | None, wait_s: float,
          cmd: list[str], decode, raw: bool, user: TargetUser | None = None) -> int:
    """Watch until the target exits or Ctrl-C; print each move, then a summary line. Returns
    the exit status of the command: 1 when the launched target was killed, or damaged what
    the observer reads. user: who a launched command runs as."""
    with observer_placed(placement) as target_cpus, observer_class(**options) as observer:
        observer.target_cpus = target_cpus
        observer.target_user = user
        if name and pid is None:
            pid = observer.attach_at_exec(name, wait_s, armed=lambda: say(
                f"waiting for a process named {name} (caught at exec)"))
            say(f"caught PID {pid} ({name}) " + (observer.came_late or "at exec"))
        elif pid:
            observer.attach(pid)
        else:
            observer.launch(cmd)
            runs_as = user.name if user else TargetUser.current().name
            say(f"launched PID {observer.pid} as {runs_as}: {' '.join(cmd)}")
        # Ctrl-C and SIGTERM end the watch cleanly: events() drains and returns.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: observer.stop())
        # A watch may run for hours, so the collector stays on, but what exists now (bcc's
        # objects ...) is frozen out of it: a full collection then walks only what the watch
        # made, not the ~10 ms worth of objects that delayed live moves (bench/run/runner.py).
        gc.freeze()
        started = time.monotonic_ns()
        observer.release()
        say(f"watching PID {observer.pid}")
        tally = print_moves(observer, started, decode, raw)
        seconds = (time.monotonic_ns() - started) / 1e9
        ending, killed_by = how_it_ended(observer)
        print(f"watched PID {observer.pid} for {seconds:.1f} s ({ending}): {summary(observer, tally)}")
        damage = observer.target_damage
    if damage is not None:
        say(f"ERROR: {damage}; the moves above came before it")
        return 1
    if killed_by:
        say(f"ERROR: the launched target was killed by {killed_by}")
        return 1
    return 0


def print_moves(observer, started: int, decode, raw: bool) -> tuple[Counter, int, bytes | None, Counter]:
    """Each event as it comes, stamped from the release; returns (moves by kind, other writes,
    the first of those, writes by the target's children by PID)."""
    moves, others, first_other, by_children = Counter(), 0, None, Counter()
    for event in observer.events():
        stamp = (event.ts_ns - started) / 1e6
        # A child of the target (ptrace's seccomp strategy follows them: see
        # methods/ptrace.py) writes as itself: its moves are shown and counted as its own.
        who = "opponent" if event.pid == observer.pid else f"PID {event.pid} (not the target)"
        if raw:
            print(f"[{stamp:.3f}ms] {'' if event.pid == observer.pid else who + ' '}wrote {event.raw!r}")
        move = decode(event.raw)
        if event.pid != observer.pid:
            by_children[event.pid] += 1
            if move and not raw:
                print(f"[{stamp:.3f}ms] {who} played: {move}")
        elif move:
            moves[move] += 1
            if not raw:
                print(f"[{stamp:.3f}ms] opponent played: {move}")
        else:
            others += 1
            first_other = first_other if first_other is not None else event.raw
    return moves, others, first_other, by_children


def summary(observer, tally: tuple[Counter, int, bytes | None, Counter]) -> str:
    """'30 moves (rock 10, paper 10, scissors 10), 0 other writes, 0 lost (kernel counter)'."""
    moves, others, first_other, by_children = tally
    order = {move: index for index, move in enumerate(MOVES)}  # rock, paper, scissors, then others
    kinds = ", ".join(f"{m} {moves[m]}" for m in sorted(moves, key=lambda m: (order.get(m, len(MOVES)), m)))
    source = type(observer).loss_source
    if observer.target_damage is not None:
        lost = "lost: unknown (the ring's counters cannot be trusted)"
    elif source:
        lost = f"{observer.counters.lost} lost ({source})"
    else:
        lost = f"no loss count ({type(observer).method} keeps none)"
    other_writes = f"{others} other writes" + (f" (the first: {first_other!r})" if others else "")
    children = (f", {sum(by_children.values())} writes by {len(by_children)} other process(es) it started"
                if by_children else "")
    return f"{sum(moves.values())} moves ({kinds or 'none'}), {other_writes}{children}, {lost}"


def how_it_ended(observer) -> tuple[str, str | None]:
    """How the watched target ended, in words, and the signal that killed it if we launched
    it. An attached process is not our child: its exit status is not ours to read."""
    if not observer.target_exited():
        return "stopped", None
    if observer.process is None:
        return "target exited", None
    code = observer.process.wait()
    if code < 0:
        name = signal.Signals(-code).name
        return f"target killed by {name}", name
    return f"target exited with status {code}", None


