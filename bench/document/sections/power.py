"""The gate's power: A/B gates of one commit against itself, then with a known cost added in
one layer (`tapbench gate --power`, results/gate_power.json, measured by hand)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.entry import Entry
from bench.document.section import Section, Table, template

TITLE, ANCHOR = "The gate's power", "the-gates-power"


@dataclass
class Injected(Entry):
    """One layer made dearer."""
    extra_ns: int  # added to every write, ns
    of_technique: str  # the technique whose overhead it is a quarter of
    caught: dict  # row label -> gates (of the rounds) that failed it
    measured_added_ns: dict | None = None  # row label -> what the added cost measured, ns


@dataclass
class GatePower(Entry):
    date: str
    commit: str
    rounds: int  # gates run each way
    repeats: int  # rounds a gate
    threshold: float  # the slowdown a gate fails
    alpha: float  # after Holm
    unchanged: list  # per gate of the commit against itself: the rows it failed
    injected: dict  # layer -> Injected
    wall_s: float
    complete: bool = True  # absent: the run finished (older files)

    @classmethod
    def read(cls, data: dict) -> "GatePower":
        power = cls.from_json(data, "gate_power.json")
        power.injected = {layer: Injected.from_json(found, f"gate_power.json, injected {layer}")
                          for layer, found in power.injected.items()}
        return power


def _caught(power: GatePower, found: Injected, label: str, count: int) -> str:
    added = (found.measured_added_ns or {}).get(label)
    return f"{label}: {count}/{power.rounds}" + ("" if added is None else f" (it added {added:,.0f} ns)")


def section(data: dict | None) -> Section | None:
    if not data:
        return None
    power = GatePower.read(data)
    failed = [gate for gate in power.unchanged if gate]
    prose = template("power", rounds=power.rounds, commit=power.commit[:12], date=power.date,
                     minutes=f"{power.wall_s / 60:.0f}", repeats=power.repeats, threshold=f"{power.threshold:.0%}",
                     alpha=power.alpha, failed=len(failed), gates=len(power.unchanged),
                     which=f" ({'; '.join(', '.join(f) for f in failed)})" if failed else "")
    if not power.complete:
        prose += "\n\n" + template("power", "incomplete", gates=len(power.unchanged), layers=len(power.injected))
    rows = [[layer, f"+{found.extra_ns:,} ns a write ({found.of_technique})",
             *[_caught(power, found, label, count) for label, count in found.caught.items()]]
            for layer, found in power.injected.items()]
    width = max((len(r) for r in rows), default=2)
    rows = [r + ["-"] * (width - len(r)) for r in rows]
    return Section(TITLE, ANCHOR, prose, [Table(["layer made dearer", "added"] + ["caught in"] * (width - 2), rows)])
