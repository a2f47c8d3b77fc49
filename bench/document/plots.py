"""The plots of results/README.md, drawn from a results document only (like the tables), so
`tapbench report` can redraw them without measuring anything."""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

from bench.document.rows import Document, Row

# The plots drawn beside the README, with their titles there.
OVERHEAD_PNG, LATENCY_PNG, CEILING_PNG, DUEL_PNG = "overhead.png", "latency_cdf.png", "ceiling.png", "duel.png"
PLOTS = [(OVERHEAD_PNG, "Overhead per move, log scale"), (LATENCY_PNG, "Latency CDFs"),
         (CEILING_PNG, "Captured vs offered rate: the throughput ceiling"),
         (DUEL_PNG, "The duel: moves won against the deadline")]
CLAIM_LINE_STYLES = [":", "--", "-.", (0, (5, 1, 1, 1))]


@functools.cache
def _pyplot():
    """matplotlib, imported when something is drawn (the import takes a second)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a benchmark machine
    import matplotlib.pyplot as plt

    return plt


def row_label(document: Document, row: Row) -> str:
    return f"{document.label(row)} · {row.target} · G={row.goroutines} · {row.placement} · {row.group}"


def overhead_claims(methods: dict) -> list[tuple[float, str]]:
    """The article's per-event figures, from the methods section, drawn beside the bars."""
    found = []
    for name, info in sorted(methods.items()):
        for claim in info.get("claims", []):
            if claim["aspect"] == "overhead_ns" and claim["value"] is not None:
                variant = "".join(f", {value}" for value in claim["when"].values())
                found.append((claim["value"], f"claimed: {name}{variant} {claim['text']}"))
    return found


def overhead_plot(document: Document, path: Path) -> bool:
    """Overhead per move, log scale: the methods span three orders of magnitude."""
    plt = _pyplot()
    rows = [r for r in document.runs if not r.paced and not document.is_baseline(r) and not r.not_applicable]
    if not rows:
        return False
    rows.sort(key=lambda r: r.overhead_ns)
    # A log axis cannot show zero or less: such a median is drawn at 1 ns and says so.
    values = [max(r.overhead_ns, 1.0) for r in rows]
    low = [max(v - max(r.overhead_iqr_ns[0], 1.0), 0) for v, r in zip(values, rows)]
    high = [max(max(r.overhead_iqr_ns[1], 1.0) - v, 0) for v, r in zip(values, rows)]
    figure, axes = plt.subplots(figsize=(9, 0.4 * len(rows) + 1.5))
    axes.barh(range(len(rows)), values, xerr=[low, high], color="tab:blue", capsize=3)
    axes.set_yticks(range(len(rows)), [row_label(document, r) + ("  (≤ 0)" if r.overhead_ns <= 1 else "")
                                       for r in rows], fontsize=8)
    for (claim_ns, text), style in zip(overhead_claims(document.methods), itertools.cycle(CLAIM_LINE_STYLES)):
        axes.axvline(claim_ns, color="tab:red", linestyle=style, linewidth=1, label=text)
    axes.legend(fontsize=7, loc="lower right")
    axes.set_xscale("log")
    axes.set_xlabel("overhead per move, ns (median of paired observed − bare; bars: IQR)")
    axes.set_title("What watching costs the watched process")
    axes.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def latency_plot(document: Document, path: Path) -> bool:
    """Latency CDFs (the opponent's stamp to Python), paced and flat out side by side."""
    plt = _pyplot()
    rows = [r for r in document.runs if r.latency_cdf_ns]
    if not rows:
        return False
    figure, (paced_axes, flat_axes) = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for axes, paced, title in ((paced_axes, True, "paced"), (flat_axes, False, "flat out")):
        axes.set_prop_cycle(color=plt.cm.tab20.colors)  # up to 20 distinct lines per panel
        for row in (r for r in rows if r.paced == paced):
            points = row.latency_cdf_ns
            axes.plot([max(v, 1) / 1000 for _, v in points], [p for p, _ in points],
                      label=f"{row_label(document, row)} · {row.moves} moves")
        rates = sorted({r.rate for r in rows if r.paced == paced and r.rate})
        axes.set_title(f"{title}" + (f" ({', '.join(f'{x:g}' for x in rates)} moves/s)" if rates else ""))
        axes.set_xscale("log")
        axes.set_xlabel("latency, µs (the opponent's stamp before its write() → received in Python)")
        axes.grid(which="both", alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=6)
    paced_axes.set_ylabel("percentile")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def ceiling_plot(document: Document, path: Path) -> bool:
    """Captured against offered rate for every probe of the ceiling search."""
    plt = _pyplot()
    ceilings = document.section("ceilings")
    if not ceilings:
        return False
    figure, axes = plt.subplots(figsize=(8, 6))
    for ceiling in ceilings:
        probes = sorted(ceiling["probes"], key=lambda p: p["offered"])
        label = f"{document.label(ceiling)} · {ceiling['target']} · {ceiling.get('placement', 'free')}"
        line, = axes.plot([p["offered"] for p in probes], [p["captured_rate"] for p in probes],
                          marker="o", markersize=3, label=label)
        failed = [p for p in probes if not p["held"]]
        axes.scatter([p["offered"] for p in failed], [p["captured_rate"] for p in failed],
                     marker="x", s=50, color=line.get_color())
    top = max(p["offered"] for c in ceilings for p in c["probes"])
    axes.plot([1000, top], [1000, top], color="grey", linestyle="--", linewidth=1, label="captured = offered")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("offered rate, moves/s (paced opponent)")
    axes.set_ylabel("captured moves/s (verified)")
    axes.set_title("Throughput ceiling (× = probe failed: loss, target throttled or backlog)")
    return _save(figure, axes, path)


def duel_plot(document: Document, path: Path) -> bool:
    """The share of moves won against the deadline, one line per technique."""
    plt = _pyplot()
    duels = document.section("duels")
    if not duels:
        return False
    figure, axes = plt.subplots(figsize=(8, 5))
    for duel in duels:
        axes.plot(duel["deadlines_us"], [100 * r for r in duel["win_rate"]], marker="o",
                  label=f"{document.label(duel)} · {duel['placement']}")
    axes.set_xscale("log")
    axes.set_ylim(0, 100)
    axes.set_xlabel("deadline after the opponent's own stamp of its move, µs")
    axes.set_ylabel("moves won, %")
    axes.set_title("The duel: which technique answers in time")
    return _save(figure, axes, path)


def _save(figure, axes, path: Path) -> bool:
    plt = _pyplot()
    axes.grid(which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def draw(document: Document, out: Path) -> list[Path]:
    """Every plot the document has data for; returns the files written."""
    written = []
    for name, draw_one in ((OVERHEAD_PNG, overhead_plot), (LATENCY_PNG, latency_plot),
                           (CEILING_PNG, ceiling_plot), (DUEL_PNG, duel_plot)):
        if draw_one(document, out / name):
            written.append(out / name)
    return written
