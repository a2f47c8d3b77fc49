"""results/report.html: every table sortable and filterable, every chart interactive, in ONE
file that fetches nothing (no script, style or font from the network), so it opens offline and
from an archive years later.

The libraries carry their own JavaScript, inlined here: itables (DataTables, with its
ColumnControl search lists as the filter dropdowns) for the tables, plotly.js for the charts.
Hovering a cell or a point shows what it summarises: the raw repeats.

The page is made of Sections (bench/document/section.py), the same the README is written from.
A cell that is text but starts with a figure ('0.52 [0.40, 0.61]', '+44 % [+41, +60]', '67 [51,
101] ns') sorts by that figure, in one unit, wherever most of its column's cells do.
"""
from __future__ import annotations

import base64
import functools
import html
import json
import re
from pathlib import Path

from bench.document.section import Cell, Image, Section, Table, Value

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
h3 { margin: 1.75rem 0 0.5rem 0; }
"""
# A figure at the start of a cell, with its interval and unit if it has them: what the column
# sorts by. The same pattern in Python (which columns) and in the page (each cell's key).
LEADING_FIGURE = r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:\[[^\]]*\])?\s*(%|ns|µs|ms|s|M/s|k/s|×)?"
SCALES = {"µs": 1e3, "ms": 1e6, "s": 1e9, "M/s": 1e6, "k/s": 1e3}
NO_FIGURE = -1e300  # what a cell without a figure sorts as: first when ascending (DataTables needs a finite number)
SORT_BY_FIGURE = f"""function (data, type) {{
  if (type !== "sort" && type !== "type") {{ return data; }}
  const text = String(data).replace(/<[^>]*>/g, "").replace(/&[a-z#0-9]+;/g, " ").replace(/,/g, "").replace(/\u2212/g, "-");
  const found = new RegExp({json.dumps(LEADING_FIGURE)}).exec(text);
  if (!found) {{ return {NO_FIGURE}; }}
  return parseFloat(found[1]) * ({json.dumps(SCALES)}[found[2]] || 1);
}}"""


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table")


def markdown_html(text: str) -> str:
    return _markdown().render(text).replace("<table>", '<table class="report-prose">')


def cell_html(value: Value) -> str | int | float:
    """A cell as DataTables shows it: numbers as numbers (rounded to 4 significant digits),
    text as inline Markdown with its HTML escaped (`<br>` kept as a line break)."""
    if isinstance(value, Cell):
        value = value.text
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


def _with_title(value, title: str | None):
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


def figure_columns(table: Table) -> list[int]:
    """The columns of text that sort by their leading figure: where most cells that say
    anything ('-' says nothing) start with one."""
    found = []
    for index in range(len(table.headers)):
        cells = [row[index] for row in table.rows if index < len(row)]
        texts = [str(c) for c in cells if isinstance(c, (str, Cell)) and str(c).strip() not in ("", "-")]
        figures = [t for t in texts if re.match(LEADING_FIGURE, t.replace(",", "").replace("**", ""))]
        if texts and len(figures) * 2 > len(texts):
            found.append(index)
    return found


def table_html(table: Table, table_id: str) -> str:
    """One interactive table: sortable by clicking any header, a search-list dropdown on each
    filter column, every row kept (no downsampling)."""
    import itables
    import pandas

    rows = [[_with_title(cell_html(value), title) for value, title in zip(row, titles)]
            for row, titles in zip(table.rows, table.hovers())]
    frame = pandas.DataFrame(rows, columns=_unique(table.headers), dtype=object)
    filtered = [table.headers.index(name) for name in table.filters if name in table.headers]
    options = dict(table_id=table_id, connected=False, allow_html=True, showIndex=False, maxBytes=0,
                   display_logo_when_loading=False, text_in_header_can_be_selected=False,
                   pageLength=PAGE_LENGTHS[0] if len(rows) > PAGE_LENGTHS[0] else max(len(rows), 1),
                   lengthMenu=[PAGE_LENGTHS, [str(n) if n > 0 else "all" for n in PAGE_LENGTHS]],
                   classes="display nowrap compact cell-border", style="table-layout:auto;width:auto;margin:0",
                   scrollX=True)
    column_defs = [{"targets": filtered, "columnControl": [["searchList"]]}] if filtered else []
    by_figure = figure_columns(table)
    if by_figure:
        column_defs.append({"targets": by_figure, "render": itables.JavascriptFunction(SORT_BY_FIGURE)})
    if column_defs:
        options["columnDefs"] = column_defs
    if len(rows) <= PAGE_LENGTHS[0]:
        options["layout"] = {"topStart": None, "bottomStart": None, "bottomEnd": None}
    parts = [f"<h3>{_inline(table.title)}</h3>" if table.title else "", markdown_html(table.prose),
             f'<p class="table-caption">{_inline(table.caption)}</p>' if table.caption else "",
             itables.to_html_datatable(frame, **options), markdown_html(table.notes)]
    return "\n".join(part for part in parts if part)


def _inline(text: str) -> str:
    return _markdown().renderInline(html.escape(text, quote=False))


def figure_html(figure, index: int) -> str:
    """A plotly figure as a div (plotly.js is in the page once), or a PNG inlined as base64."""
    if isinstance(figure, (Image, str, Path)):
        path = Path(figure.path if isinstance(figure, Image) else figure)
        alt = figure.title if isinstance(figure, Image) else path.name
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = f"<figcaption>{html.escape(alt)}</figcaption>" if isinstance(figure, Image) else ""
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">{caption}</figure>'
    import plotly.io

    return "<figure>" + plotly.io.to_html(figure, full_html=False, include_plotlyjs=False,
                                          div_id=f"figure-{index}",
                                          config={"displaylogo": False, "responsive": True}) + "</figure>"


def _is_chart(figure) -> bool:
    return not isinstance(figure, (Image, str, Path))


def _libraries(sections: list[Section]) -> str:
    """The JavaScript and CSS of the libraries, inlined once in the page's head."""
    from itables import options
    from itables.javascript import generate_init_offline_itables_html

    parts = [generate_init_offline_itables_html(options.dt_bundle)]
    if any(_is_chart(f) for s in sections for f in s.figures):
        from plotly.offline import get_plotlyjs

        parts.append(f'<script type="text/javascript">{get_plotlyjs()}</script>')
    return "\n".join(parts)


def section_html(section: Section, number: int) -> str:
    tables = [table_html(table, f"table-{number}-{index}") for index, table in enumerate(section.tables)]
    figures = [figure_html(figure, number * 100 + index) for index, figure in enumerate(section.figures)]
    return (f'<section id="{html.escape(section.anchor)}"><h2>{html.escape(section.title)}</h2>\n'
            + markdown_html(section.prose) + "\n".join(tables + figures) + markdown_html(section.notes)
            + "</section>")


def write_html(path: Path, title: str, intro_markdown: str, sections: list[Section]) -> Path:
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
