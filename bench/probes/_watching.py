"""What the probes that run `tapbench watch` against an opponent share: the command line, the
running opponent nobody launched for it, and stopping the watch cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from bench.run.targets import Workload
from methods import REGISTRY
from methods._kernel.process import SKIP_CAPABILITY_PRECHECK

ATTACH_RATE = 10_000  # moves/s of the running opponent an observer attaches to
ATTACH_TIMEOUT_S = 60  # for a move to be seen by an attaching watch (a BPF compile takes seconds)


def option_flags(options: dict) -> list[str]:
    flags = []
    for name, value in options.items():
        if value is True:
            flags.append(f"--{name.replace('_', '-')}")
        elif value not in (False, None):
            flags.append(f"--{name.replace('_', '-')}={value}")
    return flags


def tapbench(*argv: str) -> list[str]:
    """The command line of a probe. Probes run with --placement free: what they measure
    (privileges, attach, SIGKILL) must not depend on being allowed to move the target."""
    return [sys.executable, "-m", "bench", *argv]


def without_precheck() -> dict:
    return os.environ | {SKIP_CAPABILITY_PRECHECK: "1"}


def running_opponent(rate: float) -> subprocess.Popen:
    """An opponent nobody launched for us: our child, but not under any observer."""
    workload = Workload("go", 100_000_000, rate=rate)
    argv = workload.argv("/dev/null")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


def watch_flags(method: str, options: dict) -> list[str]:
    """The flags of a probe's `tapbench watch`: its options, and the default of every option watch
    would otherwise choose itself (Observer.watch_options: eBPF's loader), so that the probe runs
    the variant its entry is labelled with."""
    cls = REGISTRY[method]
    chosen_by_watch = {name: cls.cli_options[name].get("default") for name in cls.watch_options()}
    return option_flags(chosen_by_watch | options)


def wait_until_writing(pid: int, timeout_s: float = 30.0) -> None:
    """Until the opponent has written (its first write is a line on stderr, then its moves)."""
    deadline = time.monotonic() + timeout_s
    while psutil.Process(pid).io_counters().write_count < 2 and time.monotonic() < deadline:
        time.sleep(0.005)


def stop_watch(watch: subprocess.Popen) -> None:
    """SIGINT (the watch detaches and exits), then SIGKILL if it does not; its pipes closed."""
    if watch.poll() is None:
        watch.send_signal(signal.SIGINT)
        try:
            watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
    watch.stdout.close()
    watch.stderr.close()
