"""What a target can do to its observer, measured: bench/hostile_target.c looks for anything
of the observer's in its own memory (the preload ring is mapped there by design, for preload,
zpoline and sud; no other technique puts anything there) and attacks it, under `tapbench watch`
with each technique. The observer must not die, must not print an impossible figure, must say
what the target did, and must leave nothing behind."""
from __future__ import annotations

import glob
import re
import subprocess
import sys
import time

from bench.probes._probe import Context, Probe, everyone
from bench.probes._watching import option_flags
from bench.run.targets import BIN_DIR, ROOT, TargetMissing
from methods._kernel.bpf_system import loaded_bpf_program_ids

PROBE = Probe("hostile", everyone, order=110, what="a target that attacks what of its observer it can reach")
HOSTILE_TARGET = BIN_DIR / "hostile-target"
ATTACKS = ("truncate", "scribble")
WATCH_TIMEOUT_S = 120
UNLOAD_WAIT_S = 5.0
# A figure no write count of a short run can reach: printed, it was read from memory the
# target wrote.
IMPOSSIBLE = 10 ** 12


def hostile_binary() -> str:
    if not HOSTILE_TARGET.exists():
        raise TargetMissing(f"{HOSTILE_TARGET} is not built: run `make build` (or `sudo make setup`)")
    return str(HOSTILE_TARGET)


def attacked(method: str, options: dict, attack: str) -> dict:
    """One watch of the hostile target: how the observer came out of it."""
    segments, programs = set(glob.glob("/dev/shm/*")), loaded_bpf_program_ids()
    try:
        result = subprocess.run([sys.executable, "-m", "bench", "watch", "--placement", "free", "--method", method,
                                 *option_flags(options), "--", hostile_binary(), attack],
                                capture_output=True, text=True, cwd=ROOT, timeout=WATCH_TIMEOUT_S)
        code, out, err = result.returncode, result.stdout, result.stderr
    except subprocess.TimeoutExpired as expired:
        code, out, err = None, expired.stdout or "", f"the watch did not end within {WATCH_TIMEOUT_S} s"
    out, err = str(out), str(err)
    numbers = [int(n) for n in re.findall(r"\d+", "\n".join(line for line in out.splitlines()
                                                             if line.startswith("watched PID")))]
    reported = next((line.removeprefix("ERROR: ") for line in err.splitlines() if line.startswith("ERROR: ")), None)
    target_said = next((line for line in err.splitlines()
                        if line.startswith(("truncate ->", "scribbled", "no ring"))), None)
    # The kernel frees a closed program after an RCU grace period: give it that long.
    deadline = time.monotonic() + UNLOAD_WAIT_S
    while (new := loaded_bpf_program_ids() - programs) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sorted((set(glob.glob("/dev/shm/*")) - segments) | {f"BPF program {p}" for p in new})
    return {"attack": attack, "observer_exit": code, "survived": code in (0, 1),
            "target_found": "nothing of the observer's" if target_said == "no ring of the observer's in this process"
            else ("the ring" if target_said else "unknown"),
            "target_said": target_said, "observer_said": reported,
            "impossible_figure": any(n >= IMPOSSIBLE for n in numbers), "left_behind": left,
            "moves_seen": out.count("played: ")}


def hostile_target_probe(method: str, options: dict) -> dict:
    """Every attack against one technique."""
    return {"method": method, "options": options, "attacks": [attacked(method, options, a) for a in ATTACKS]}


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return context.each(lineup, "a hostile target attacks {} {}", hostile_target_probe, kind="hostile")
