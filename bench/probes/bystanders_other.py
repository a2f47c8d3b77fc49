"""The bystander cost with another program as the bystander (bench/probes/bystanders.py): a
uprobe traps only in processes that run the probed binary, a syscall tracepoint in every one."""
from __future__ import annotations

from bench.probes import bystanders
from bench.probes._probe import Context, Probe, nobody

PROBE = Probe("bystanders, another program", nobody, order=140, section="bystanders",
              what="an unwatched other program's cost while the opponent is watched")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return bystanders.run(lineup, context, kind="other")
