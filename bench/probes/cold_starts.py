"""A first start in a new process (`tapbench run`, nothing compiled before in it), for the
variants techniques name: what bcc's compile, libbpf's load or bpftrace's compile costs a user
(bench/probes/dependence.py has the machinery)."""
from __future__ import annotations

from bench.probes._probe import Context, Probe, nobody
from bench.probes.dependence import cold_starts

PROBE = Probe("cold_starts", nobody, order=20, what="a first start in a new process")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    if not lineup:
        return []
    context.phase("first starts in a new process", "cold starts")
    return cold_starts(lineup)
