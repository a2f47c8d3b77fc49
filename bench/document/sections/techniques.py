"""A section per technique, for report.html: its verdicts and what refutes them, its headline
figures, every row, its floors, every probe that measured it, and its overhead per move as an
interactive chart with the 95 % intervals and the raw repeats on hover. Written from the
document and headline.json (bench/document/headline.py headline_json)."""
from __future__ import annotations

import json
from dataclasses import asdict

from bench.document.cells import number_text, paired_text, raw_list
from bench.document.rows import Document, Row
from bench.document.section import Section, Table, Value
from bench.document.sections.bpf_time import BpfProfile
from bench.document.sections.bystanders import Bystander
from bench.document.sections.ceiling import Ceiling
from bench.document.sections.dependence import ColdStart, Dependence
from bench.document.sections.duel import Duel
from bench.document.sections.first_move import ExecWatch
from bench.document.sections.intrusiveness import Hostile, SigKill
from bench.document.sections.privileges import Privilege
from bench.document.sections.latency import LatencyFloor
from bench.document.sections.ratios import Comparison
from bench.document.sections.startup import Attach

# Every probe section's entry, in the document's order of sections.
PROBES = (Comparison, Bystander, Ceiling, Attach, Privilege, SigKill, Duel, ExecWatch, BpfProfile, LatencyFloor,
          Hostile, Dependence, ColdStart)


def json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


PLACEMENT_COLOURS = {"shared": "#1f77b4", "split": "#ff7f0e", "free": "#2ca02c"}
TICKS_NS = [step * 10.0 ** power for power in range(0, 8) for step in (1, 2, 5)]


def _ns_text(ns: float) -> str:
    return next((f"{ns / scale:g} {unit}" for scale, unit in ((1e6, "ms"), (1e3, "µs")) if ns >= scale), f"{ns:g} ns")


def _case(document: Document, row: Row) -> str:
    writers = f" · {row.goroutines} writers" if row.goroutines > 1 else ""
    return f"{document.label(row)} · {row.target}{writers} [{row.group}]"


def overhead_chart(document: Document, rows: list[Row], title: str = "Overhead per move"):
    """Overhead per move, a point per row and placement with its bootstrap 95 % interval (the
    verdicts'), the raw repeats on hover and the article's claims as labelled lines. A log
    axis cannot show zero or less: such a value is drawn at 1 ns, and its hover says so."""
    import plotly.graph_objects as go

    rows = [r for r in rows if not r.paced and r.samples_bare_ns_per_move and r.samples_observed_ns_per_move]
    figure = go.Figure()
    labels = sorted({_case(document, r) for r in rows})
    for placement, colour in PLACEMENT_COLOURS.items():
        placed = [r for r in rows if r.placement == placement]
        if not placed:
            continue
        intervals = [r.overhead_interval_ns for r in placed]
        drawn = [max(value, 1.0) for value, _, _ in intervals]
        figure.add_trace(go.Scatter(
            x=drawn, y=[_case(document, r) for r in placed], mode="markers", name=placement,
            marker={"color": colour, "size": 8},
            error_x={"type": "data", "symmetric": False, "array": [max(high, 1.0) - d for d, (_, _, high) in zip(drawn, intervals)],
                     "arrayminus": [d - max(low, 1.0) for d, (_, low, _) in zip(drawn, intervals)]},
            hovertext=[f"<b>{_case(document, r)}</b>, {placement}<br>{value:,.1f} ns [{low:,.1f}, {high:,.1f}] "
                       f"(95 % CI){' — ≤ 0, drawn at 1 ns' if value < 1 else ''}<br>{paired_text(r, '<br>')}"
                       for r, (value, low, high) in zip(placed, intervals)], hoverinfo="text"))
    methods = {r.method for r in rows}
    for method, claim in ((m, c) for m, info in document.methods.items() if m in methods
                          for c in info.get("claims", []) if c["aspect"] == "overhead_ns" and c["value"]):
        figure.add_trace(go.Scatter(x=[claim["value"]] * 2, y=[labels[0], labels[-1]], mode="lines+text",
                                    line={"color": "red", "dash": "dash"}, name=f"claimed {claim['text']} ({method})",
                                    text=[f"claimed {claim['text']}", ""], textposition="top right",
                                    hoverinfo="name"))
    figure.update_layout(title=title, height=170 + 26 * len(labels), margin={"l": 10, "r": 10, "t": 60, "b": 60},
                         legend={"orientation": "h", "y": -0.02, "yanchor": "top", "x": 0},
                         yaxis={"categoryorder": "array", "categoryarray": labels[::-1]},
                         xaxis={"type": "log", "tickvals": TICKS_NS, "ticktext": [_ns_text(v) for v in TICKS_NS],
                                "title": "overhead per move: the median, bars its bootstrap 95 % CI (the verdicts' "
                                         "interval); hover for the repeats"})
    return figure


def _interval_text(interval) -> str:
    return f"[{number_text(interval[0])}, {number_text(interval[1])}]"


def cell_text(cell) -> str:
    """A headline cell in a few words: its value and interval when it has them, else its
    items; the whole cell is in the hover."""
    if cell is None or cell == []:
        return "-"
    if isinstance(cell, dict) and "value" in cell:
        interval = cell.get("interval")
        value = "-" if cell["value"] is None else number_text(cell["value"])
        return value + (f" {_interval_text(interval)}" if interval else "") + (
            f", {cell['placement']}" if cell.get("placement") else "")
    if isinstance(cell, list):
        return "; ".join(cell_text(item) if isinstance(item, (dict, list)) else str(item) for item in cell)
    if isinstance(cell, dict):
        return ", ".join(f"{k}: {number_text(v)}" for k, v in cell.items() if not isinstance(v, (dict, list)) and v is not None)
    return str(cell)


def verdicts_table(entry: dict, rules: dict) -> Table:
    """Each claim about the technique: what it was judged on, what was measured, the verdict,
    why, and the rule (what would make it hold, or refute it)."""
    claims = entry.get("claims") or []
    return Table(
        ["aspect", "claim", "judged on", "measured", "verdict", "why", "holds when / refuted when"],
        [[c.get("aspect"), c.get("text"), c.get("label") or "-", cell_text(c.get("measured")), f"**{c.get('verdict')}**",
          c.get("why"), rules.get(c.get("aspect"), "-")] for c in claims],
        raw=[[None, None, None, json_text(c.get("measured")), None, None, None] for c in claims])


def rows_table(document: Document, rows: list[Row]) -> Table:
    """Every row of a technique; hover the medians for the repeats they summarise."""
    headers = ["variant", "group", "target", "writers", "placement", "pace", "capture", "captured/expected",
               "overhead ns/move", "95 % CI", "slowdown %", "CPU cost ns/event", "cost 95 % CI", "latency p99 µs",
               "unstable"]
    cells, raw = [], []
    for row in rows:
        value, low, high = row.overhead_interval_ns if row.samples_observed_ns_per_move else (None, None, None)
        cost_ci = row.cpu_cost_ci or []
        cells.append([document.label(row), row.group, row.target, row.goroutines, row.placement,
                      f"paced {row.rate:g}/s" if row.paced else "flat out", row.capture,
                      row.not_applicable and f"n/a: {row.not_applicable}" or f"{row.captured}/{row.expected}",
                      None if row.paced or value is None else value,
                      None if row.paced or value is None else _interval_text([low, high]),
                      None if row.paced else 100 * row.overhead_ratio, row.cpu_cost_ns_per_event,
                      _interval_text(cost_ci) if cost_ci else None,
                      None if row.latency_p99_ns is None else row.latency_p99_ns / 1000, "; ".join(row.unstable)])
        raw.append([None] * 8 + [paired_text(row), None,
                                 raw_list([100 * s for s in row.slowdowns()], "%"),
                                 raw_list(row.samples_cpu_cost_ns_per_event, "ns"), None,
                                 raw_list(getattr(row, "latency_p99_per_repeat_ns", None), "ns"), None])
    return Table(headers, cells, filters=["variant", "group", "target", "placement", "pace"], raw=raw,
                     caption="Every row of the technique. Hover a median for the repeats it summarises.")


def floors_table(document: Document, rows: list[Row]) -> Table:
    """Each row beside its floor (the same mechanism only counting): the ratio and its interval."""
    placed = [r for r in rows if r.capture == "count" or r.over_floor is not None or r.over_floor_note]
    return Table(
        ["variant", "group", "target", "placement", "overhead ns/move", "over its floor ×", "95 % CI", "note"],
        [[document.label(r), r.group, r.target, r.placement, r.overhead_interval_ns[0],
          "(the floor)" if r.capture == "count" else r.over_floor,
          _interval_text(r.over_floor_ci) if r.over_floor_ci else None, r.over_floor_note]
         for r in placed],
        filters=["group", "placement"],
        raw=[[None, None, None, None, paired_text(r), raw_list(r.over_floor_samples), None, None]
             for r in placed])


def _probe_cell(value) -> tuple[Value, str | None]:
    """A probe's field as a cell and its hover: lists of numbers by their median and count."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        ordered = sorted(value)
        return f"median {number_text(ordered[len(ordered) // 2])} ({len(value)})", raw_list(value)
    if value == [] or value == {}:
        return None, None
    if isinstance(value, (dict, list)):
        text = json_text(value)
        return (text if len(text) <= 60 else text[:57] + "…"), (text[:3000] if len(text) > 60 else None)
    return value, None


def probe_entries(document: Document, method: str) -> list[tuple[str, list[dict]]]:
    """(section, its entries about the technique as plain values) for every probe section."""
    found = []
    for kind in PROBES:
        if kind is BpfProfile:
            entries = [asdict(p) | {"placement": profile.placement} for profile in kind.of(document)
                       for p in profile.programs if p.method == method]
        else:
            entries = [asdict(e) for e in kind.of(document) if getattr(e, "method", None) == method]
        if entries:
            found.append((kind.SECTION, entries))
    return found


def probe_tables(document: Document, method: str) -> list[Table]:
    """One table per probe section that measured the technique, every field of its entries."""
    tables = []
    for name, entries in probe_entries(document, method):
        keys = [k for k in dict.fromkeys(k for e in entries for k in e if e[k] is not None)
                if k not in ("method", "options")]
        cells = [[document.label(e), *(_probe_cell(e.get(k)) for k in keys)] for e in entries]
        tables.append(Table(["variant", *keys], [[row[0], *(c for c, _ in row[1:])] for row in cells],
                            raw=[[None, *(r for _, r in row[1:])] for row in cells],
                            filters=[k for k in ("placement", "target", "mode") if k in keys],
                            caption=f"Probe: {name}"))
    return tables


def technique_prose(document: Document, entry: dict) -> str:
    """What the technique is, what it needs, and which row speaks for it, from the document."""
    name = entry["name"]
    info = document.info(name)
    skipped = [s["reason"] for s in document.skipped if s.get("method") == name]
    attach = "yes" if info.get("can_attach") else f"no ({info.get('attach_unavailable') or 'launch only'})"
    lines = [info.get("description") or "", "",
             f"- **its row** (the headline's): `{entry['label']}`" if entry.get("label") else
             f"- **its row**: {entry.get('missing') or 'none'}",
             f"- **targets**: {', '.join(info.get('targets') or ['-'])}; **default placement**: "
             f"{info.get('default_placement', '-')}; **attaches to a running process**: {attach}",
             f"- **depends on**: {info.get('dependence') or '-'}"]
    lines += [f"- **skipped in this sweep**: {reason}" for reason in skipped]
    return "\n".join(lines)


def headline_table(entry: dict) -> Table:
    cells = entry.get("cells") or {}
    return Table(["figure", "in a few words"], [[key, cell_text(cell)] for key, cell in cells.items()],
                     raw=[[None, json_text(cell)] for cell in cells.values()],
                     caption="The headline's figures for this technique (hover for all of each).")


def technique_sections(document: Document, headline: dict) -> list[Section]:
    """One section per technique of headline.json (bench/document/headline.py headline_json):
    its verdicts, its headline figures, its rows, its floors, its probes, and its overhead chart."""
    sections = []
    rules = headline.get("rules") or {}
    for entry in headline.get("techniques", []):
        name = entry["name"]
        rows = [r for r in document.runs if r.method == name]
        tables = [verdicts_table(entry, rules)] if entry.get("claims") else []
        tables.append(headline_table(entry))
        if rows:
            tables.append(rows_table(document, rows))
        if any(r.capture == "count" or r.over_floor is not None for r in rows):
            tables.append(floors_table(document, rows))
        tables += probe_tables(document, name)
        flat = [r for r in rows if not r.paced and not r.not_applicable]
        figures = [overhead_chart(document, flat, f"{name}: overhead per move")] if flat else []
        article = entry.get("article_name")
        sections.append(Section(f"{name}" + (f" ({article})" if article else ""), f"technique-{name}",
                                    technique_prose(document, entry), tables, figures))
    return sections
