"""The opponent binaries and how to start them for a run."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from methods import REGISTRY
from methods.protocol import TARGET_NAMES

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = ROOT / "gotargets" / "bin"
OPPONENT_NAME = "rock-paper-scissors"
# A run's scratch folder (where the opponent writes its ground truth) is named with the PID of
# the tapbench process that made it: one killed before it could remove it (SIGKILL) leaves it
# behind, and `tapbench cleanup` removes it once that process is gone (bench/run/cleanup.py).
SCRATCH_PREFIX = "tapbench-run-"


def scratch_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


def is_opponent(process_name: str) -> bool:
    """Whether a process name is one of the opponent's builds. The kernel keeps 15 characters
    of a name (/proc/PID/comm); psutil completes it from the command line when it can."""
    return process_name.startswith(OPPONENT_NAME[:15])


# target name -> (binary, write path). 'go' is the realistic opponent: pure Go, static, raw
# write system calls. 'libc' is the cgo build writing through glibc's write(). 'cgo' is the cgo
# build writing through Go's os.Stdout: dynamically linked, yet no write() goes through libc.
TARGETS = {
    "go": (OPPONENT_NAME, "go"),
    "cgo": (OPPONENT_NAME + "-cgo", "go"),
    "libc": (OPPONENT_NAME + "-cgo", "libc"),
}
if tuple(TARGETS) != TARGET_NAMES:
    raise RuntimeError("bench/run/targets.py and methods/base.py must name the same targets")


def target_seen_by(method: str) -> str:
    """The target a method watches by default: the first of those it declares it can see."""
    return REGISTRY[method].targets[0]


def target_seen_by_all(methods: list[str]) -> str | None:
    """The first target (in TARGETS order) that every one of methods can see, if any."""
    return next((t for t in TARGETS if all(t in REGISTRY[m].targets for m in methods)), None)


class TargetMissing(Exception):
    pass


@dataclass(frozen=True)
class Workload:
    target: str = "go"
    moves: int = 100_000
    rate: float = 0.0  # moves/s over all goroutines; 0 = flat out
    goroutines: int = 1
    seed: int = 1
    noise: int = 0  # every N moves, the opponent also writes adversarial non-moves
    # Every Nth move of each writer is stamped by the opponent just before its write(): the
    # origin of every latency figure (1 = every move, as the duel needs).
    stamp_every: int = 64
    # Where the target and the observer run (bench/run/placement.py); the bare runs paired with
    # observed ones run in the same placement.
    placement: str = "free"
    # Who the target runs as (a user name or number; methods/_kernel/process.py TargetUser); None: as
    # tapbench itself, as the sweep's own opponent does.
    user: str | None = None

    def label(self) -> str:
        paced = f" at {self.rate:g}/s" if self.rate else ""
        return f"{self.target}, {self.moves} moves{paced}, {self.goroutines} goroutine(s), {self.placement}"

    def binary(self) -> Path:
        path = BIN_DIR / TARGETS[self.target][0]
        if not path.exists():
            raise TargetMissing(f"{path} is not built: run `make build` (or `sudo make setup`)")
        return path

    def argv(self, report_path: str) -> list[str]:
        return [str(self.binary()), "-moves", str(self.moves), "-seed", str(self.seed),
                "-rate", repr(float(self.rate)), "-goroutines", str(self.goroutines),
                "-io", TARGETS[self.target][1], "-noise", str(self.noise),
                "-stamp-every", str(self.stamp_every), "-report", report_path]
