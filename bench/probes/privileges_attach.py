"""Least privilege to attach: `tapbench watch --pid` of an opponent root started, not the
observer's child (bench/probes/privileges.py has the machinery)."""
from __future__ import annotations

from functools import partial

from bench.probes._probe import Context, Probe, can_attach
from bench.probes.privileges import least_privilege

PROBE = Probe("attach privileges", can_attach, attaching=True, order=70, section="privileges",
              what="the least capabilities to attach")


def run(lineup: list[tuple[str, dict]], context: Context) -> list[dict]:
    return context.each(lineup, "least privilege of {} {} (attach)", partial(least_privilege, mode="attach"),
                        kind="privileges")
