"""For which need: a few sentences, each written from the data with its intervals, that say
which technique to use to watch a running static Go program from outside with least privilege,
at the lowest cost when you launch the program yourself, for every system call (Go's raw ones
included) from inside the process, with no root at all, and for live latency."""
from __future__ import annotations

from bench.document.rows import Document, Row
from bench.document.section import Section, template
from bench.document.sections.decision import Profile, interval_text, profiles, ran_unprivileged
from bench.document.sections.privileges import Privilege
from bench.document.sections.latency import LatencyFloor

TITLE, ANCHOR = "For which need", "for-which-need"
IN_PROCESS = "LD_PRELOAD set"  # the opponent saw a hook loaded into itself
UNPRIVILEGED = "uid 65534"


def _low(cell: dict) -> float:
    return cell["interval"][0]


def _high(cell: dict) -> float:
    return cell["interval"][1]


def _figure(profile: Profile, cell: str) -> str:
    return f"{profile.name} {interval_text(profile.cells[cell])} ({profile.entry['row']['target']})"


def ranked(found: list[Profile], cell: str) -> str:
    """'zpoline 70 [64, 80] ns (cgo) is the cheapest; above it: sud ...', or the techniques
    whose intervals overlap the lowest one's: never a ratio."""
    measured = sorted((p for p in found if p.cells.get(cell)), key=lambda p: p.cells[cell]["value"])
    if not measured:
        return "nothing measured"
    best, others = measured[0], measured[1:]
    tied = [p for p in others if _low(p.cells[cell]) <= _high(best.cells[cell])]
    above = [p for p in others if p not in tied]
    if not others:
        return f"{_figure(best, cell)}, the only one"
    if not tied:
        return f"{_figure(best, cell)} is the cheapest; " + (
            f"above it: {', '.join(_figure(p, cell) for p in above)}" if len(above) <= 2 else
            "every other technique's interval lies above it")
    shown = ", ".join(_figure(p, cell) for p in [best, *tied])
    return f"{shown}: their intervals overlap, so none is called the cheapest" + (
        f"; every other lies above {best.name}'s" if above else "")


def variant_row(document: Document, probe: Privilege, placement: str) -> Row | None:
    """The flat-out row of the probe's variant on static Go, one writer, in the placement: the
    technique's primary group's where it has one, else the first measured."""
    defaults = document.info(probe.method).get("default_options", {})
    found = [r for r in document.runs if r.method == probe.method and r.target == "go" and r.goroutines == 1
             and not r.paced and r.capture != "count" and r.placement == placement
             and defaults | r.options == defaults | (probe.options or {})]
    primary = (document.metadata.get("primary_groups") or {}).get(probe.method)
    return next((r for r in found if r.group == primary), found[0] if found else None)


def attach_privilege(probe: Privilege) -> str:
    user = "an unprivileged user with it watched exactly" if ran_unprivileged(probe) else \
        "as an unprivileged user with it, it did not run here"
    return f"{probe.minimum} ({user})"


def from_outside(document: Document, found: list[Profile]) -> str | None:
    candidates = [(p, probe) for p in found if not p.peer and p.sees["go"] and p.sees["running"]
                  for probe in p.attach if probe.minimum is not None]
    if not candidates:
        return None
    candidates.sort(key=lambda pair: (not ran_unprivileged(pair[1]), len(pair[1].minimum.split("+"))))
    best = {}  # the least-privileged attach of each technique
    for profile, probe in candidates:
        best.setdefault(profile.name, (profile, probe))
    said = []
    for profile, probe in best.values():
        placement = profile.info.get("default_placement", "free")
        row = variant_row(document, probe, placement)
        cost = "" if row is None else f", {interval_text(overhead(row))} a move ({placement})"
        said.append(f"`{document.label(probe)}` needs {attach_privilege(probe)}{cost}")
    return ("**A running static Go program, from outside, with least privilege:** " + said[0]
            + (". Then " + "; ".join(said[1:]) if len(said) > 1 else "") + ".")


def overhead(row: Row) -> dict:
    value, low, high = row.overhead_interval_ns
    return {"value": value, "interval": [low, high], "unstable": row.unstable}


def launched(found: list[Profile]) -> str:
    mine = [p for p in found if not p.peer]
    text = (f"**The lowest cost when you launch the program yourself** (CPU per event, counted whole, each "
            f"technique's row in its default placement): {ranked(mine, 'cpu_cost_ns_per_event')}.")
    static = [p for p in mine if p.sees["go"]]
    blind = [p.name for p in mine if not p.sees["go"]]
    if blind and static:
        text += f" On static Go, which {', '.join(blind)} cannot see: {ranked(static, 'cpu_cost_ns_per_event')}."
    return text


def in_process(found: list[Profile]) -> str | None:
    """In the process (a hook loaded into it) and seeing Go's own raw system calls (cgo)."""
    hooks = [p for p in found if not p.peer and IN_PROCESS in p.cells["noticed"]]
    raw = [p for p in hooks if p.sees["cgo"]]
    if not raw:
        return None
    blind = [p.name for p in hooks if not p.sees["cgo"]]
    static = "" if any(p.sees["go"] for p in raw) else " (dynamically linked programs only: none sees static Go)"
    return (f"**Every system call, Go's raw ones included, from inside the process**{static}: by overhead per "
            f"move, {ranked(raw, 'overhead_ns')}" + (f"; {', '.join(blind)} sees only libc's write()" if blind else "")
            + ".")


def no_root(found: list[Profile]) -> str | None:
    free = [p for p in found if not p.peer and p.launch is not None and p.launch.minimum == "none"
            and ran_unprivileged(p.launch)]
    if not free:
        return None
    attach = [document_label for p in found for probe in p.attach if probe.minimum == "none"
              for document_label in [p.name]]
    return (f"**No root at all** ({UNPRIVILEGED}, no capability, launching the program): "
            f"{', '.join(p.name for p in free)} captured exactly; by CPU per event, "
            f"{ranked(free, 'cpu_cost_ns_per_event')}. "
            + (f"Without a capability, {', '.join(sorted(set(attach)))} also attached to a program root started."
               if attach else "None attached to a program root started without a capability."))


def live(document: Document, found: list[Profile]) -> str | None:
    timed = sorted((p for p in found if not p.peer and p.cells.get("latency_p99_ns")),
                   key=lambda p: p.cells["latency_p99_ns"]["value"])
    if not timed:
        return None
    shown = ", ".join(f"{p.name} {latency_text(p.cells['latency_p99_ns'])}" for p in timed)
    ranges = all(p.cells["latency_p99_ns"].get("repeats_range") for p in timed)
    floors = [f for f in LatencyFloor.of(document)]
    floor = "; ".join(f"{f.latency_p99_ns / 1000:.3g} µs ({f.placement})" for f in floors)
    return ("**Live latency** (p99 from the opponent's stamp before its write() to Python, as `watch` runs each at "
            f"20,000 moves/s): {shown}. "
            + ("The ranges are those of the repeats' own p99s. " if ranges else
               "One p99 per technique without an interval here: read the order as rough. ")
            + (f"A pipe read with no interception at all: {floor}." if floor else ""))


def latency_text(cell: dict) -> str:
    spread = cell.get("repeats_range")
    text = f"{cell['value'] / 1000:.3g} µs"
    return text + (f" ({spread[0] / 1000:.3g}–{spread[1] / 1000:.3g})" if spread else "")


def section(document: Document, headline: dict) -> Section | None:
    found = profiles(document, headline)
    if not found:
        return None
    sentences = [s for s in (from_outside(document, found), launched(found), in_process(found), no_root(found),
                             live(document, found)) if s]
    return Section(TITLE, ANCHOR, template("advice") + "\n\n" + "\n".join(f"- {s}" for s in sentences))
