"""results/report.html: every table sortable and filterable, every chart interactive, in ONE
file that fetches nothing (no script, style or font from the network), so it opens offline and
from an archive years later.

The libraries carry their own JavaScript, inlined here: itables (DataTables, with its
ColumnControl search lists as the filter dropdowns) for the tables, plotly.js for the charts.
Hovering a cell or a point shows what it summarises: the raw repeats.
"""
from __future__ import annotations

import base64
import functools
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.document.rows import SECTIONS, Document, Row

Cell = str | float | int | None

PAGE_LENGTHS = [25, 100, -1]  # -1: every row
LONG_TEXT = 60  # characters: a cell longer than this wraps
PAGE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1b1b1b; }
nav.report-contents { position: fixed; top: 0; left: 0; bottom: 0; width: 15rem; overflow-y: auto; padding: 1rem;
      background: #f4f4f4; font-size: 0.85rem; box-sizing: border-box; }
nav.report-contents a { display: block; color: #1b4f8a; text-decoration: none; padding: 0.15rem 0; }
main { margin-left: 16rem; padding: 1rem 2rem 4rem 1rem; max-width: 110rem; }
section { border-top: 1px solid #ddd; margin-top: 2rem; }
table.report-prose { border-collapse: collapse; } table.report-prose td, table.report-prose th { border: 1px solid #ccc; padding: 0.2rem 0.4rem; }
p.table-caption { margin: 1.5rem 0 0.25rem 0; font-weight: 600; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
.dt-container { font-size: 0.85rem; margin: 0.5rem 0 1.5rem 0; }
td span[title] { text-decoration: underline dotted; cursor: help; }
table.dataTable div.long-text { white-space: normal; min-width: 16rem; max-width: 36rem; }
"""


@dataclass
class HtmlTable:
    """A table: headers, rows of cells (numbers stay numbers, so they sort as numbers), the
    columns offered as filter dropdowns, and per-cell hover text (`raw`, the same shape as
    rows; None where a cell has none), e.g. the raw repeats a median summarises."""

    headers: list[str]
    rows: list[list[Cell]]
    filters: list[str] = field(default_factory=list)
    raw: list[list[str | None]] | None = None
    caption: str = ""


@dataclass
class HtmlSection:
    """A section of the page: its title, its anchor (the id links use), Markdown prose, then
    its tables and its figures (plotly figures, or paths of PNG files, inlined)."""

    title: str
    anchor: str
    prose: str = ""
    tables: list[HtmlTable] = field(default_factory=list)
    figures: list = field(default_factory=list)


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table")


def markdown_html(text: str) -> str:
    return _markdown().render(text).replace("<table>", '<table class="report-prose">')


def cell_html(value: Cell) -> Cell:
    """A cell as DataTables shows it: numbers as numbers (rounded to 4 significant digits),
    text as inline Markdown with its HTML escaped (`<br>` kept as a line break)."""
    if value is None or value != value:  # None or NaN: nothing measured
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if isinstance(value, int):
            return value
        rounded = float(f"{value:.4g}")
        return int(rounded) if rounded.is_integer() else rounded
    parts = str(value).split("<br>")
    text = "<br>".join(_markdown().renderInline(html.escape(part, quote=False)) for part in parts)
    # The table does not wrap (its columns stay readable; it scrolls sideways): long text does.
    return f'<div class="long-text">{text}</div>' if len(str(value)) > LONG_TEXT else text


def _with_title(value: Cell, title: str | None) -> Cell:
    if not title:
        return value
    return f'<span title="{html.escape(title, quote=True)}">{value}</span>'


def _unique(headers: list[str]) -> list[str]:
    """Headers made unique for the table's columns, looking the same (a zero-width space
    added): two columns may share a title in the report."""
    seen: dict[str, int] = {}
    unique = []
    for header in headers:
        seen[header] = seen.get(header, 0) + 1
        unique.append(header + "\u200b" * (seen[header] - 1))
    return unique


def table_html(table: HtmlTable, table_id: str) -> str:
    """One interactive table: sortable by clicking any header, a search-list dropdown on each
    filter column, every row kept (no downsampling)."""
    import itables
    import pandas

    raw = table.raw or [[None] * len(table.headers) for _ in table.rows]
    rows = [[_with_title(cell_html(value), title) for value, title in zip(row, titles)]
            for row, titles in zip(table.rows, raw)]
    frame = pandas.DataFrame(rows, columns=_unique(table.headers), dtype=object)
    filtered = [table.headers.index(name) for name in table.filters if name in table.headers]
    options = dict(table_id=table_id, connected=False, allow_html=True, showIndex=False, maxBytes=0,
                   display_logo_when_loading=False, text_in_header_can_be_selected=False,
                   pageLength=PAGE_LENGTHS[0] if len(rows) > PAGE_LENGTHS[0] else max(len(rows), 1),
                   lengthMenu=[PAGE_LENGTHS, [str(n) if n > 0 else "all" for n in PAGE_LENGTHS]],
                   classes="display nowrap compact cell-border", style="table-layout:auto;width:auto;margin:0",
                   scrollX=True)
    if filtered:
        options["columnDefs"] = [{"targets": filtered, "columnControl": [["searchList"]]}]
    if len(rows) <= PAGE_LENGTHS[0]:
        options["layout"] = {"topStart": None, "bottomStart": None, "bottomEnd": None}
    caption = f'<p class="table-caption">{_markdown().renderInline(html.escape(table.caption, quote=False))}</p>' if table.caption else ""
    return caption + itables.to_html_datatable(frame, **options)


def figure_html(figure, index: int) -> str:
    """A plotly figure as a div (plotly.js is in the page once), or a PNG inlined as base64."""
    if isinstance(figure, (str, Path)):
        data = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
        return f'<figure><img alt="{html.escape(Path(figure).name)}" src="data:image/png;base64,{data}"></figure>'
    import plotly.io

    return "<figure>" + plotly.io.to_html(figure, full_html=False, include_plotlyjs=False,
                                          div_id=f"figure-{index}",
                                          config={"displaylogo": False, "responsive": True}) + "</figure>"


def _libraries(sections: list[HtmlSection]) -> str:
    """The JavaScript and CSS of the libraries, inlined once in the page's head."""
    from itables import options
    from itables.javascript import generate_init_offline_itables_html

    parts = [generate_init_offline_itables_html(options.dt_bundle)]
    if any(not isinstance(f, (str, Path)) for s in sections for f in s.figures):
        from plotly.offline import get_plotlyjs

        parts.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    return "\n".join(parts)


def section_html(section: HtmlSection, number: int) -> str:
    tables = [table_html(table, f"table-{number}-{index}") for index, table in enumerate(section.tables)]
    figures = [figure_html(figure, number * 100 + index) for index, figure in enumerate(section.figures)]
    return (f'<section id="{html.escape(section.anchor)}"><h2>{html.escape(section.title)}</h2>\n'
            + markdown_html(section.prose) + "\n".join(tables + figures) + "</section>")


def write_html(path: Path, title: str, intro_markdown: str, sections: list[HtmlSection]) -> Path:
    """Write the whole report as one self-contained HTML file; returns its path."""
    contents = "".join(f'<a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(section_html(section, number) for number, section in enumerate(sections))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style>\n{_libraries(sections)}\n</head>\n"
            f'<body><nav class="report-contents"><strong>{html.escape(title)}</strong>{contents}</nav>\n'
            f"<main><h1>{html.escape(title)}</h1>\n{markdown_html(intro_markdown)}\n{body}\n</main></body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def raw_list(values, unit: str = "") -> str | None:
    """'812, 790, 805 ns': the raw repeats as hover text (None when there are none)."""
    if not values:
        return None
    return ", ".join(number_text(v) for v in values) + (f" {unit}" if unit else "")


def number_text(value) -> str:
    """'9,640', '0.123', '12.3': a number as a person reads it (never in e-notation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# --- the sections of one technique ------------------------------------------------------------

PLACEMENT_COLOURS = {"shared": "#1f77b4", "split": "#ff7f0e", "free": "#2ca02c"}
TICKS_NS = [step * 10.0 ** power for power in range(0, 8) for step in (1, 2, 5)]


def _ns_text(ns: float) -> str:
    return next((f"{ns / scale:g} {unit}" for scale, unit in ((1e6, "ms"), (1e3, "µs")) if ns >= scale), f"{ns:g} ns")


def _case(document: Document, row: Row) -> str:
    writers = f" · {row.goroutines} writers" if row.goroutines > 1 else ""
    return f"{document.label(row)} · {row.target}{writers} [{row.group}]"


def _repeats_text(row: Row) -> str:
    paired = [o - b for o, b in zip(row.samples_observed_ns_per_move, row.samples_bare_ns_per_move)]
    return (f"paired observed − bare, per repeat: {raw_list(paired, 'ns')}<br>"
            f"observed: {raw_list(row.samples_observed_ns_per_move, 'ns')}<br>"
            f"bare: {raw_list(row.samples_bare_ns_per_move, 'ns')}")


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
                       f"(95 % CI){' — ≤ 0, drawn at 1 ns' if value < 1 else ''}<br>{_repeats_text(r)}"
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


def verdicts_table(entry: dict, rules: dict) -> HtmlTable:
    """Each claim about the technique: what it was judged on, what was measured, the verdict,
    why, and the rule (what would make it hold, or refute it)."""
    claims = entry.get("claims") or []
    return HtmlTable(
        ["aspect", "claim", "judged on", "measured", "verdict", "why", "holds when / refuted when"],
        [[c.get("aspect"), c.get("text"), c.get("label") or "-", cell_text(c.get("measured")), f"**{c.get('verdict')}**",
          c.get("why"), rules.get(c.get("aspect"), "-")] for c in claims],
        raw=[[None, None, None, json_text(c.get("measured")), None, None, None] for c in claims])


def rows_table(document: Document, rows: list[Row]) -> HtmlTable:
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
        raw.append([None] * 8 + [_repeats_text(row).replace("<br>", "\n"), None,
                                 raw_list([100 * s for s in row.slowdowns()], "%"),
                                 raw_list(row.samples_cpu_cost_ns_per_event, "ns"), None,
                                 raw_list(getattr(row, "latency_p99_per_repeat_ns", None), "ns"), None])
    return HtmlTable(headers, cells, filters=["variant", "group", "target", "placement", "pace"], raw=raw,
                     caption="Every row of the technique. Hover a median for the repeats it summarises.")


def floors_table(document: Document, rows: list[Row]) -> HtmlTable:
    """Each row beside its floor (the same mechanism only counting): the ratio and its interval."""
    placed = [r for r in rows if r.capture == "count" or r.over_floor is not None or r.over_floor_note]
    return HtmlTable(
        ["variant", "group", "target", "placement", "overhead ns/move", "over its floor ×", "95 % CI", "note"],
        [[document.label(r), r.group, r.target, r.placement, r.overhead_interval_ns[0],
          "(the floor)" if r.capture == "count" else r.over_floor,
          _interval_text(r.over_floor_ci) if r.over_floor_ci else None, r.over_floor_note]
         for r in placed],
        filters=["group", "placement"],
        raw=[[None, None, None, None, _repeats_text(r).replace("<br>", "\n"), raw_list(r.over_floor_samples), None, None]
             for r in placed])


def _probe_cell(value) -> tuple[Cell, str | None]:
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


def probe_tables(document: Document, method: str) -> list[HtmlTable]:
    """One table per probe section that measured the technique, every field of its entries."""
    tables = []
    for name in SECTIONS:
        entries = [e for e in document.section(name) if e.get("method") == method]
        if name == "bpf_profile":
            entries = [p | {"placement": profile.get("placement")} for profile in document.section(name)
                       for p in profile.get("programs", []) if p.get("method") == method]
        if not entries:
            continue
        keys = list(dict.fromkeys(k for e in entries for k in e if k not in ("method", "options")))
        cells = [[document.label(e), *(_probe_cell(e.get(k)) for k in keys)] for e in entries]
        tables.append(HtmlTable(["variant", *keys], [[row[0], *(c for c, _ in row[1:])] for row in cells],
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


def headline_table(entry: dict) -> HtmlTable:
    cells = entry.get("cells") or {}
    return HtmlTable(["figure", "in a few words"], [[key, cell_text(cell)] for key, cell in cells.items()],
                     raw=[[None, json_text(cell)] for cell in cells.values()],
                     caption="The headline's figures for this technique (hover for all of each).")


def technique_sections(document: Document, headline: dict) -> list[HtmlSection]:
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
        sections.append(HtmlSection(f"{name}" + (f" ({article})" if article else ""), f"technique-{name}",
                                    technique_prose(document, entry), tables, figures))
    return sections
