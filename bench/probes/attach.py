"""Attach, measured: a first start in a new process, as a user starts `tapbench watch --pid`."""
from __future__ import annotations

import select
import subprocess
import time

from bench.probes._probe import Context, Probe, can_attach
from bench.probes._watching import (ATTACH_RATE, ATTACH_TIMEOUT_S, running_opponent, stop_watch, tapbench,
                                    wait_until_writing, watch_flags)
from bench.run.targets import ROOT

PROBE = Probe("attach", can_attach, attaching=True, order=50,
              what="a new watch process attaching to a running opponent")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return context.each(lineup, "attaching {} {} to a running opponent", attach_startup)


def attach_startup(method: str, options: dict, repeats: int = 3) -> dict:
    """A first start in a new process, as `tapbench watch --pid` makes it, attaching to a running
    opponent: milliseconds from starting the watch until it says it watches (attach_ms) and until
    it prints the first move (first_move_ms), once per new process. Nothing compiled by an
    earlier start is reused: a start that reuses bytecode is a row's ready_ms_reused instead."""
    attach_ms, first_move_ms, errors = [], [], []
    for _ in range(repeats):
        opponent = running_opponent(ATTACH_RATE)
        try:
            wait_until_writing(opponent.pid)
            started = time.monotonic_ns()
            # unbuffered: select() says what readline() will find, with no line kept in a buffer
            watch = subprocess.Popen(tapbench("watch", "--placement", "free", "--method", method,
                                              *watch_flags(method, options), "--pid", str(opponent.pid)),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, bufsize=0)
            try:
                attached, first, error = _first_move(watch, started)
            finally:
                stop_watch(watch)
            if error:
                errors.append(error)
            else:
                attach_ms.append(attached)
                first_move_ms.append(first)
        finally:
            opponent.kill()
            opponent.wait()
    return {"method": method, "options": options, "repeats": repeats, "start": "a new `tapbench watch --pid` each",
            "attach_ms": attach_ms, "first_move_ms": first_move_ms, "errors": errors}


def _first_move(watch: subprocess.Popen, started: int) -> tuple[float | None, float | None, str | None]:
    """(ms until the watch said it watches, ms until its first move, or the error it ended with)."""
    attached, said = None, b""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while attached is None:
        readable, _, _ = select.select([watch.stderr], [], [], max(deadline - time.monotonic(), 0))
        line = watch.stderr.readline() if readable else b""
        if not line:  # the watch ended (its last line says why) or said nothing in time
            return None, None, f"no 'watching' line within {ATTACH_TIMEOUT_S} s" if not readable else \
                (said.decode(errors="replace").strip() or "the watch ended")
        if line.startswith(b"watching PID"):
            attached = (time.monotonic_ns() - started) / 1e6
        elif line.strip():
            said = line
    readable, _, _ = select.select([watch.stdout], [], [], max(deadline - time.monotonic(), 0))
    line = watch.stdout.readline() if readable else b""
    if b"opponent played" not in line:
        return None, None, f"no move seen within {ATTACH_TIMEOUT_S} s of the start"
    return attached, (time.monotonic_ns() - started) / 1e6, None
