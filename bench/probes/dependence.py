"""Kernel dependence, measured where it can be: what each eBPF loader needs where it runs.

  core_without_headers  `tapbench run --method ebpf --loader core`, in a mount namespace in which
                        the kernel headers bcc compiles against are hidden, and with bcc (and so
                        its clang) not importable: if it captures exactly, the CO-RE object needs
                        neither headers nor a compiler on this kernel, only its BTF. The same
                        with --loader bcc and only the headers hidden says what bcc needs.
  cold_starts           a first start in a new process, for each loader and for bpftrace: from
                        launch to the mechanism in place (ready_ms), nothing compiled before.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from bench.probes._probe import Context, Probe, nobody
from bench.probes._watching import option_flags
from bench.run.targets import ROOT
from methods.ebpf import kernel_headers_dir

PROBE_MOVES = 2000
COLD_STARTS = 3
# Run by the probe in its own mount namespace: the headers' folders covered by empty ones.
HIDDEN = ("/usr/src", "/lib/modules")


def _run(options: dict, method: str = "ebpf", hide: bool = False, hide_bcc: bool = False,
         out: str | None = None) -> subprocess.CompletedProcess:
    """`tapbench run` of PROBE_MOVES moves, once, in a new process; hide: the kernel headers out
    of its reach; hide_bcc: bcc too."""
    argv = [sys.executable]
    if hide_bcc:  # bcc unimportable: nothing of it, nor its clang, can be used
        argv += ["-c", "import sys; sys.modules['bcc'] = None; from bench.cli import main; sys.exit(main())"]
    else:
        argv += ["-m", "bench"]
    argv += ["run", "--placement", "free", "--method", method, *option_flags(options), "--moves", str(PROBE_MOVES),
             "--repeats", "1"] + (["--json", out] if out else [])
    if hide:
        covers = " && ".join(f"mount -t tmpfs tmpfs {folder}" for folder in HIDDEN)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{covers} && exec "$@"', "sh", *argv]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300)


def core_without_headers() -> dict:
    """Each loader with the kernel headers and bcc out of reach (where the machine can hide
    them: unshare and mount need root)."""
    if shutil.which("unshare") is None:
        return {"measured": False, "why": "unshare is not installed (util-linux)"}
    found = {"measured": True, "hidden": list(HIDDEN) + ["bcc's Python module"],
             "headers_here": kernel_headers_dir().exists()}
    for loader in ("core", "bcc"):
        result = _run({"loader": loader}, hide=True, hide_bcc=loader == "core")
        exact = result.returncode == 0 and f"{PROBE_MOVES}/{PROBE_MOVES} exact" in result.stdout
        error = (result.stderr.strip().splitlines() or [""])[-1]
        found[loader] = {"exact": exact, "error": None if exact else error}
    return found


def cold_starts(variants: list[tuple[str, dict]], starts: int = COLD_STARTS) -> list[dict]:
    """A first start in a new process for each variant, `starts` times: launch to ready (ms)."""
    found = []
    for method, options in variants:
        ready, errors = [], []
        for _ in range(starts):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                result = _run(options, method=method, out=out.name)
                if result.returncode != 0:
                    errors.append((result.stderr.strip().splitlines() or ["?"])[-1])
                    continue
                (row,) = json.loads(open(out.name).read())["runs"]
                ready.append(row["ready_ms"])
        found.append({"method": method, "options": options, "starts": starts, "ready_ms": ready,
                      "median_ms": float(np.median(ready)) if ready else None, "errors": errors})
    return found


PROBE = Probe("dependence", nobody, order=10, what="the eBPF loaders with the kernel headers and bcc hidden (once)")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    context.phase("the eBPF loaders with the kernel headers and bcc hidden", "kernel dependence")
    return [core_without_headers()]
