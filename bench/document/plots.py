"""The plots of results/README.md, drawn from a results document only (like the tables), so
`tapbench report` can redraw them without measuring anything.

Every plot is built to be read: small multiples (a panel per technique or per placement) so no
axes holds more than MAX_SERIES series; each series its own colour within its axes (a technique
keeps one colour in every plot); the interval drawn is the bootstrap 95 % interval the verdicts
use, and the axis says so; the article's claims are lines labelled on the plot; legends sit
outside the data; no file is larger than MAX_INCHES × DPI pixels on its longer side.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from bench.document.headline import PACED_RATE, chosen_rows, runs_variant, techniques_in_order
from bench.document.rows import Document, Row

# The plots drawn beside the README, with their titles there.
OVERHEAD_PNG, LATENCY_PNG, CEILING_PNG, DUEL_PNG = "overhead.png", "latency_cdf.png", "ceiling.png", "duel.png"
PLOTS = [(OVERHEAD_PNG, "Overhead per move, log scale"), (LATENCY_PNG, "Latency CDFs"),
         (CEILING_PNG, "The throughput ceiling: the rates each technique held and the first it failed"),
         (DUEL_PNG, "The duel: moves won against the deadline")]
DPI = 100
MAX_INCHES = 16.0  # 1,600 px at DPI: the longer side of any plot
MAX_SERIES = 10
CLAIM_COLOUR = "tab:red"
PLACEMENT_COLOURS = {"shared": "tab:blue", "split": "tab:orange", "free": "tab:green"}
CI_WORDS = "bootstrap 95 % CI of the median, as the verdicts use"
# Latency percentiles are drawn on a tail scale, -log10(1 − p): p50, p90, p99, p99.9 equally spaced.
TAIL_TICKS = [(0, "p0"), (50, "p50"), (90, "p90"), (99, "p99"), (99.9, "p99.9"), (99.99, "p99.99")]
TAIL_MAX = 4.5  # where p100 (the maximum) is drawn: just beyond p99.99


@functools.cache
def _pyplot():
    """matplotlib, imported when something is drawn (the import takes a second)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a benchmark machine
    import matplotlib.pyplot as plt

    return plt


def ns_text(ns: float) -> str:
    """'80 ns', '5 µs', '1.2 ms': an axis tick in the unit that reads best."""
    if ns == 0:
        return "0"
    for scale, unit in ((1e6, "ms"), (1e3, "µs")):
        if abs(ns) >= scale:
            return f"{ns / scale:g} {unit}"
    return f"{ns:g} ns"


def technique_colours(document: Document) -> dict[str, tuple]:
    """One colour per technique, the same in every plot (tab10, then tab20 past ten)."""
    plt = _pyplot()
    names = techniques_in_order(document)
    names += sorted({r.method for r in document.runs} - set(names))
    palette = plt.cm.tab10.colors if len(names) <= 10 else plt.cm.tab20.colors
    return {name: palette[index % len(palette)] for index, name in enumerate(names)}


def _ordered_methods(document: Document, methods: set[str]) -> list[str]:
    order = list(technique_colours(document))
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


def claims_of(document: Document, aspect: str) -> list[tuple[str, dict]]:
    """(method, claim) for every article claim on an aspect that carries a value."""
    return [(name, claim) for name, info in sorted(document.methods.items())
            for claim in info.get("claims", []) if claim["aspect"] == aspect and claim["value"] is not None]


def claim_line(axes, value: float, text: str) -> None:
    """A claim as a dashed vertical line, its words written beside it on the plot."""
    axes.axvline(value, color=CLAIM_COLOUR, linestyle="--", linewidth=1.2, gid="claim", label="_claim")
    axes.annotate(text, xy=(value, 1.0), xycoords=("data", "axes fraction"), xytext=(3, 3),
                  textcoords="offset points", ha="left", va="bottom", fontsize=8, color=CLAIM_COLOUR,
                  fontweight="bold", gid="claim")


def _chunks(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)] or [[]]


# --- overhead --------------------------------------------------------------------------------

def _overhead_rows(document: Document) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {}
    for row in document.runs:
        if not row.paced and not document.is_baseline(row) and not row.not_applicable \
                and row.samples_bare_ns_per_move and row.samples_observed_ns_per_move:
            rows.setdefault(row.method, []).append(row)
    return {name: rows[name] for name in _ordered_methods(document, set(rows))}


def _case_label(document: Document, row: Row) -> str:
    """A y tick: the variant, its target, the writers when more than one, and the group."""
    writers = f" · {row.goroutines} writers" if row.goroutines > 1 else ""
    return f"{document.label(row)} · {row.target}{writers} [{row.group}]"


def _columns(sizes: list[int], wanted: int) -> list[list[int]]:
    """Panels (by their sizes) split into `wanted` columns in order, as evenly as they go."""
    total, columns, filled = sum(sizes), [[]], 0
    for index, size in enumerate(sizes):
        if columns[-1] and len(columns) < wanted and filled + size / 2 > total * len(columns) / wanted:
            columns.append([])
        columns[-1].append(index)
        filled += size
    return columns


def _overhead_panel(document: Document, axes, name: str, rows: list[Row]) -> None:
    """One technique's rows: each case a line of the y axis, a point per placement with its
    interval; the claims about this technique as labelled lines."""
    cases: dict[str, dict[str, tuple]] = {}
    for row in rows:
        cases.setdefault(_case_label(document, row), {})[row.placement] = row.overhead_interval_ns
    labels = sorted(cases, key=lambda label: min(value for value, _, _ in cases[label].values()))
    placements = [p for p in PLACEMENT_COLOURS if any(p in placed for placed in cases.values())]
    for offset, placement in zip(np.linspace(-0.15, 0.15, len(placements)) if len(placements) > 1 else [0],
                                 placements):
        shown = [(index, cases[label][placement]) for index, label in enumerate(labels) if placement in cases[label]]
        medians = np.array([value for _, (value, _, _) in shown])
        errors = [[value - low for _, (value, low, _) in shown], [high - value for _, (value, _, high) in shown]]
        axes.errorbar(medians, [index + offset for index, _ in shown], xerr=errors, fmt="o", markersize=4,
                      capsize=2, linewidth=1.2, color=PLACEMENT_COLOURS[placement], label=placement)
    axes.set_yticks(range(len(labels)), labels, fontsize=7.5)
    axes.set_ylim(len(labels) - 0.5, -0.5)
    axes.set_title(name, loc="left", fontsize=10, fontweight="bold")
    axes.axvline(0, color="grey", linewidth=0.8, label="_zero")
    axes.grid(axis="x", which="major", alpha=0.3)
    for method, claim in claims_of(document, "overhead_ns"):
        if method == name:
            variant = "".join(f", {value}" for value in claim["when"].values())
            claim_line(axes, claim["value"], f"claimed {claim['text']}{variant}")


def overhead_figure(document: Document):
    """Overhead per move with its 95 % interval: one panel per technique, a point per
    placement, on a symmetric log axis (an interval below zero is drawn as measured)."""
    plt = _pyplot()
    by_method = _overhead_rows(document)
    if not by_method:
        return None
    sizes = [len({_case_label(document, r) for r in rows}) for rows in by_method.values()]
    columns = _columns(sizes, 2 if len(sizes) > 2 else 1)
    height = min(MAX_INCHES, 1.6 + max(sum(0.27 * sizes[i] + 0.75 for i in column) for column in columns))
    figure = plt.figure(figsize=(MAX_INCHES if len(columns) > 1 else 10, height), layout="constrained")
    names = list(by_method)
    values = [v for rows in by_method.values() for r in rows for v in r.overhead_interval_ns]
    low, high = min(min(values), 0), max(values)
    limits = (-10 ** math.ceil(math.log10(-low)) if low < -10 else -10, 10 ** math.ceil(math.log10(max(high, 10))))
    for subfigure, column in zip(np.atleast_1d(figure.subfigures(1, len(columns))), columns):
        panels = np.atleast_1d(subfigure.subplots(len(column), 1, height_ratios=[sizes[i] + 1.2 for i in column]))
        for axes, index in zip(panels, column):
            _overhead_panel(document, axes, names[index], by_method[names[index]])
            axes.set_xscale("symlog", linthresh=10, linscale=0.5)
            axes.set_xlim(*limits)
            axes.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: ns_text(x)))
        panels[-1].set_xlabel("overhead per move: the median, whiskers its 95 % CI", fontsize=8.5)
    handles = [plt.Line2D([], [], color=c, marker="o", linestyle="-", label=f"{p} placement")
               for p, c in PLACEMENT_COLOURS.items() if any(r.placement == p for rows in by_method.values() for r in rows)]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    figure.suptitle("What watching costs the watched process per move, flat out: the median of the paired "
                    f"observed − bare times, whiskers the {CI_WORDS}\n(symmetric log axis, linear within ±10 ns)",
                    fontsize=10.5)
    return figure


# --- latency ---------------------------------------------------------------------------------

def tail(percentile: float) -> float:
    """A percentile's place on the tail scale."""
    return TAIL_MAX if percentile >= 100 else -math.log10(1 - percentile / 100)


def _latency_rows(document: Document, name: str) -> list[Row]:
    """Every paced row of a technique, then its default variant flat out, one writer, in the
    group the sweep declares its primary one (any group where the document declares none):
    a rule fixed in advance, never chosen by value."""
    info = document.info(name)
    paced = [r for r in document.runs if r.method == name and r.paced and r.latency_cdf_ns]
    if (document.metadata.get("primary_groups") or {}).get(name):
        flat = [r for r in chosen_rows(document, name) if r is not None]
    else:
        defaults = info.get("default_options", {})
        flat = [r for r in document.runs if r.method == name and not r.paced and r.goroutines == 1
                and runs_variant(r.options, defaults, defaults)]
    return (paced + [r for r in flat if r.latency_cdf_ns])[:MAX_SERIES]


def _latency_label(document: Document, row: Row) -> str:
    pace = f"paced {row.rate / 1000:g}k/s" if row.paced else "flat out"
    return f"{document.label(row)} · {row.target} · {row.placement} · {pace} [{row.group}]"


def _latency_panel(document: Document, axes, name: str, rows: list[Row]) -> None:
    plt = _pyplot()
    for row, colour in zip(rows, plt.cm.tab10.colors):
        points = sorted(row.latency_cdf_ns)
        axes.plot([max(ns, 1) / 1000 for _, ns in points], [tail(p) for p, _ in points], color=colour,
                  linestyle="-" if row.paced else "--", linewidth=1.4, label=_latency_label(document, row))
    axes.set_xscale("log")
    axes.set_yticks([tail(p) for p, _ in TAIL_TICKS] + [TAIL_MAX], [t for _, t in TAIL_TICKS] + ["max"], fontsize=8)
    axes.set_ylim(0, TAIL_MAX + 0.2)
    axes.set_title(name, loc="left", fontsize=10, fontweight="bold")
    axes.grid(which="major", alpha=0.3)
    axes.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)


def latency_figure(document: Document):
    """Latency from the opponent's stamp to Python: a panel per technique, percentiles on a
    tail scale so p99 and p99.9 can be read."""
    plt = _pyplot()
    panels = {name: _latency_rows(document, name)
              for name in _ordered_methods(document, {r.method for r in document.runs if r.latency_cdf_ns})}
    panels = {name: rows for name, rows in panels.items() if rows}
    if not panels:
        return None
    columns = min(3, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure, grid = plt.subplots(lines, columns, figsize=(min(MAX_INCHES, 5.3 * columns), min(MAX_INCHES, 5.0 * lines)),
                                layout="constrained", squeeze=False, sharex=True)
    for axes, (name, rows) in zip(grid.flat, panels.items()):
        _latency_panel(document, axes, name, rows)
        axes.xaxis.set_tick_params(labelbottom=True)
        axes.set_xlabel("µs, the opponent's stamp before write() → received in Python", fontsize=7.5)
    for axes in grid.flat[len(panels):]:
        axes.set_visible(False)
    figure.suptitle(f"Observation latency: solid, paced at {PACED_RATE:,}/s (every such row); dashed, flat out "
                    "(the default variant, one writer, its primary group)", fontsize=11)
    return figure


# --- ceiling ---------------------------------------------------------------------------------

def _ceiling_panel(document: Document, axes, entries: list[dict], colours: dict, placement: str) -> None:
    """One technique per line: every probe's offered rate (● held, × failed), the bracket
    between the highest rate held and the first that failed, the target's own rate (|)."""
    for index, entry in enumerate(entries):
        colour = colours.get(entry["method"], "black")
        probes = entry["probes"]
        held = [p["offered"] for p in probes if p["held"]]
        failed = [p["offered"] for p in probes if not p["held"]]
        axes.scatter(held, [index] * len(held), s=18, color=colour, label=f"{document.label(entry)} · {entry['target']}")
        axes.scatter(failed, [index] * len(failed), s=30, marker="x", color=colour, label="_failed")
        bracket = [entry["ceiling"] or 1000, entry["first_failure"] or entry["ceiling"]]
        if bracket[1]:
            axes.plot(bracket, [index, index], color=colour, linewidth=9, alpha=0.35, solid_capstyle="butt",
                      label="_bracket", zorder=1)
        text = "below 1,000/s" if entry["ceiling"] is None else f"{entry['ceiling']:,.0f}/s"
        axes.annotate(text, xy=(bracket[0], index), xytext=(0, 7), textcoords="offset points", ha="center",
                      va="bottom", fontsize=7.5, color=colour, fontweight="bold")
        axes.scatter([entry["unobserved_max"]], [index], marker="|", s=160, color="grey", label="_target alone")
    axes.set_yticks(range(len(entries)), [f"{document.label(e)} · {e['target']}" for e in entries], fontsize=8)
    axes.set_ylim(len(entries) - 0.5, -0.5)
    axes.set_xscale("log")
    axes.grid(axis="x", which="major", alpha=0.3)
    where = {"shared": "one CPU (shared placement)", "split": "observer on the other CPU (split)"}.get(placement, placement)
    axes.set_title(where, loc="left", fontsize=10, fontweight="bold")
    for method, claim in claims_of(document, "ceiling_per_s"):
        if placement == "shared":  # the article's claim is about one core
            claim_line(axes, claim["value"], f"claimed {claim['value']:,.0f}/s ({method}, one core)")


def ceiling_figure(document: Document):
    plt = _pyplot()
    ceilings = document.section("ceilings")
    if not ceilings:
        return None
    colours, order = technique_colours(document), list(technique_colours(document))
    panels = []
    for placement in sorted({c.get("placement", "free") for c in ceilings}, key=list(PLACEMENT_COLOURS).index):
        entries = sorted((c for c in ceilings if c.get("placement", "free") == placement),
                         key=lambda c: order.index(c["method"]) if c["method"] in order else len(order))
        panels += [(placement, chunk) for chunk in _chunks(entries, MAX_SERIES)]
    height = min(MAX_INCHES, 1.8 + sum(0.45 * len(chunk) + 0.9 for _, chunk in panels))
    figure, grid = plt.subplots(len(panels), 1, figsize=(12, height), layout="constrained", squeeze=False, sharex=True,
                                height_ratios=[len(chunk) + 1.5 for _, chunk in panels])
    for axes, (placement, chunk) in zip(grid[:, 0], panels):
        _ceiling_panel(document, axes, chunk, colours, placement)
    grid[-1, 0].set_xlabel("offered rate, moves/s (the paced opponent); the ceiling lies within the bar")
    grid[-1, 0].xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    handles = [plt.Line2D([], [], color="black", marker="o", linestyle="", label="rate held"),
               plt.Line2D([], [], color="black", marker="x", linestyle="", label="rate failed"),
               plt.Line2D([], [], color="black", alpha=0.35, linewidth=9, label="highest held → first failed"),
               plt.Line2D([], [], color="grey", marker="|", markersize=12, linestyle="", label="the target alone, flat out")]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9, frameon=False)
    figure.suptitle("Throughput ceiling: the highest rate at which every move was captured, in order, "
                    "the target keeping its pace (its value written above the bar)", fontsize=11)
    return figure


# --- duel ------------------------------------------------------------------------------------

def wilson_interval(wins: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95 % interval of a share won (of `total` independent moves)."""
    if total <= 0:
        return 0.0, 1.0
    share = wins / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def _duel_panel(document: Document, axes, duels: list[dict], colours: dict, placement: str) -> None:
    for duel in duels:
        colour = colours.get(duel["method"], "black")
        deadlines = duel["deadlines_us"]
        axes.plot(deadlines, [100 * r for r in duel["win_rate"]], marker="o", markersize=4, color=colour,
                  label=f"{document.label(duel)} · {duel['target']}")
        if duel.get("wins") and duel.get("moves"):
            bands = [wilson_interval(wins, duel["moves"]) for wins in duel["wins"]]
            axes.fill_between(deadlines, [100 * low for low, _ in bands], [100 * high for _, high in bands],
                              color=colour, alpha=0.18, linewidth=0, label="_interval")
    axes.set_xscale("log")
    axes.set_ylim(0, 100)
    axes.set_ylabel("moves won, %")
    axes.grid(which="major", alpha=0.3)
    rates = sorted({f"{d['moves']:,} moves at {d['rate']:g}/s" for d in duels})
    axes.set_title(f"{placement} placement ({'; '.join(rates)})", loc="left", fontsize=10, fontweight="bold")
    axes.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def duel_figure(document: Document):
    """The share of moves answered within each deadline, a panel per placement (a technique's
    placement changes what it can win), with the Wilson 95 % interval of each share."""
    plt = _pyplot()
    duels = document.section("duels")
    if not duels:
        return None
    colours, order = technique_colours(document), list(technique_colours(document))
    panels = []
    for placement in sorted({d["placement"] for d in duels}, key=lambda p: list(PLACEMENT_COLOURS).index(p)
                            if p in PLACEMENT_COLOURS else len(PLACEMENT_COLOURS)):
        chosen = sorted((d for d in duels if d["placement"] == placement),
                        key=lambda d: order.index(d["method"]) if d["method"] in order else len(order))
        panels += [(placement, chunk) for chunk in _chunks(chosen, MAX_SERIES)]
    figure, grid = plt.subplots(len(panels), 1, figsize=(12, min(MAX_INCHES, 1.2 + 3.6 * len(panels))),
                                layout="constrained", squeeze=False, sharex=True)
    for axes, (placement, chunk) in zip(grid[:, 0], panels):
        _duel_panel(document, axes, chunk, colours, placement)
    grid[-1, 0].set_xlabel("deadline after the opponent's own stamp of its move, µs")
    figure.suptitle("The duel: which technique answers in time (bands: Wilson 95 % interval of each share)",
                    fontsize=11)
    return figure


FIGURES = ((OVERHEAD_PNG, overhead_figure), (LATENCY_PNG, latency_figure), (CEILING_PNG, ceiling_figure),
           (DUEL_PNG, duel_figure))


def figures(document: Document) -> dict[str, object]:
    """Every plot the document has data for, as matplotlib figures by file name (the caller
    closes them)."""
    built = {name: build(document) for name, build in FIGURES}
    return {name: figure for name, figure in built.items() if figure is not None}


def draw(document: Document, out: Path) -> list[Path]:
    """Every plot the document has data for; returns the files written."""
    plt = _pyplot()
    written = []
    for name, figure in figures(document).items():
        figure.savefig(out / name, dpi=DPI)
        plt.close(figure)
        written.append(out / name)
    return written
