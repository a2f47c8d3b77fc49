"""results/report.html, opened in a real browser (Debian's chromium, headless, driven by
Playwright): the report that `tapbench report` writes from the newest stored sweep loads from a
file with no console error and fetches nothing, every section the README links to and every
technique is in it, a click on a header sorts (figures written as text too), a filter hides
rows, hovering shows the raw repeats; screenshots are kept in tests/artifacts/ (git-ignored)."""
import contextlib
import re
from pathlib import Path

import pytest

from bench.document import report as report_module
from bench.document.cells import number_text
from bench.document.headline import headline_json
from bench.document.html import write_html
from bench.document.section import Section, Table
from tests.results_files import newest_document, newest_stored_results

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# Headless on a machine with no display, no sandbox (root), nothing fetched in the background.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT_MS = 60_000
DOCUMENT = newest_document()

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(DOCUMENT is None, reason="no results/machines/*/latest.json stored")]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """report.html as `tapbench report --out DIR/README.md` writes it from the newest stored sweep."""
    out = tmp_path_factory.mktemp("report")
    written = report_module.write_report(newest_stored_results(), out / "README.md")
    assert out / "report.html" in written
    return out / "report.html"


@contextlib.contextmanager
def opened(page_path: Path, profile: Path):
    """The page open in headless chromium; the requests it made and the errors it logged.
    One browser per test: conftest's nothing_left_behind ends every process a test leaves."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make venv")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: sudo make setup (Debian's chromium)")
    requests, errors = [], []
    with sync_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_path.as_uri())
            page.wait_for_function("() => [...document.querySelectorAll('main table[id^=\"table-\"]')]"
                                   ".every(t => t.classList.contains('dataTable'))")
            page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')]"
                                   ".every(d => d.querySelector('.main-svg'))")
            yield page, requests, errors
        finally:
            context.close()


@pytest.fixture
def browser(report, tmp_path):
    with opened(report, tmp_path / "profile") as found:
        yield found


def test_the_page_is_one_file_that_names_nothing_to_fetch(report):
    text = report.read_text()
    assert not re.search(r"<(script|link|img|iframe|source)\b[^>]*\b(src|href)=[\"']?(https?:)?//", text)
    assert not re.search(r"@import|url\((\"|')?(https?:)?//", text)
    assert sorted(p.name for p in report.parent.iterdir() if p.suffix == ".html") == ["report.html"]


def test_it_loads_with_no_console_error_and_no_network_request(browser, report):
    page, requests, errors = browser
    assert errors == []
    # The tables' library is inlined as base64 and imported as a blob: URL made in the page.
    assert [url for url in requests if not url.startswith("blob:")] == [report.as_uri()]
    assert page.locator("main table[id^='table-']").count() > 20


def test_every_section_the_readme_links_to_and_every_technique_is_there(browser, report):
    page, _, _ = browser
    readme = report.with_name("README.md").read_text()
    anchors = re.findall(r"\(report\.html#([^)]+)\)", readme)
    assert "every-run" in anchors and "intrusiveness-matrix" in anchors
    for anchor in set(anchors):
        assert page.locator(f"section#{anchor}").count() == 1, anchor
    for entry in headline_json(DOCUMENT)["techniques"]:
        section = page.locator(f"section#technique-{entry['name']}")
        assert section.locator("h2").inner_text().startswith(entry["name"])
        rows = [r for r in DOCUMENT.runs if r.method == entry["name"]]
        if rows:
            assert DOCUMENT.label(rows[0]) in section.inner_text()
    # the four plots, inlined
    assert page.locator("section#plots figure img[src^='data:image/png;base64,']").count() >= 3


def column_index(container, header: str) -> int:
    titles = container.locator(".dt-scroll-head thead th .dt-column-title").all_inner_texts()
    return titles.index(header)


def column(container, index: int) -> list[str]:
    return container.locator(f".dt-scroll-body tbody tr td:nth-child({index + 1})").all_inner_texts()


def leading(texts: list[str]) -> list[float]:
    """The figure each cell starts with ('0.52 [0.40, 0.61]': 0.52), where it starts with one."""
    found = [re.match(r"\s*([+-]?\d+(?:\.\d+)?)", t.replace(",", "")) for t in texts]
    return [float(m.group(1)) for m in found if m]


def section_table(page, anchor: str, header: str):
    """The first table of a section that has a column of this title."""
    return page.locator(f"section#{anchor} .dt-container").filter(has_text=header).first


def sort_by(page, table, index: int, clicks: int = 1) -> list[float]:
    """Click a header (twice: descending) until the page shows its figures in that order."""
    for _ in range(clicks):
        table.locator(".dt-scroll-head thead th").nth(index).locator(".dt-column-title").click()
    order = "<=" if clicks == 1 else ">="
    page.wait_for_function("([id, i]) => { const v = [...document.querySelectorAll(`#${id} tbody tr td:nth-child(${i})`)]"
                           ".map(td => parseFloat(td.innerText.replace(/,/g, ''))).filter(x => !isNaN(x));"
                           f" return v.length > 1 && v.every((x, k) => k == 0 || v[k - 1] {order} x); }}",
                           arg=[table.locator(".dt-scroll-body table").get_attribute("id"), index + 1])
    return leading(column(table, index))


def test_clicking_a_header_sorts_by_the_figure_a_cell_starts_with(browser):
    page, _, _ = browser
    every_run = section_table(page, "every-run", "overhead µs [95 % CI]")
    index = column_index(every_run, "overhead µs [95 % CI]")
    before = leading(column(every_run, index))
    # descending: the first page holds the dearest rows (paced rows, with no figure, sort last)
    after = sort_by(page, every_run, index, clicks=2)
    assert after == sorted(after, reverse=True) and after != before
    largest = max(r.overhead_interval_ns[0] for r in DOCUMENT.runs if not r.paced and r.samples_observed_ns_per_move)
    assert after[0] == pytest.approx(largest / 1000, abs=0.01)
    # numbers kept as numbers sort too (a technique's own table of rows)
    method = max({r.method for r in DOCUMENT.runs}, key=lambda m: sum(r.method == m for r in DOCUMENT.runs))
    rows = section_table(page, f"technique-{method}", "overhead ns/move")
    after = sort_by(page, rows, column_index(rows, "overhead ns/move"))
    assert after == sorted(after)


def test_a_filter_hides_rows(browser):
    page, _, _ = browser
    every_run = section_table(page, "every-run", "captured/expected")
    index = column_index(every_run, "target")
    counts = {target: sum(r.target == target for r in DOCUMENT.runs) for target in {r.target for r in DOCUMENT.runs}}
    target = min(counts, key=counts.get)  # the rarest: fewer rows than a page
    every_run.locator(".dt-scroll-head thead th").nth(index).locator("button.dtcc-button_dropdown").click()
    page.locator(f".dtcc-dropdown button[aria-label='{target}']").click()
    page.keyboard.press("Escape")
    page.wait_for_function("([id, n]) => document.querySelectorAll(`#${id} tbody tr`).length == n",
                           arg=[every_run.locator(".dt-scroll-body table").get_attribute("id"), counts[target]])
    assert set(column(every_run, index)) == {target} and counts[target] < len(DOCUMENT.runs)


def test_hovering_a_figure_shows_its_raw_repeats(browser):
    page, _, _ = browser
    row = next(r for r in DOCUMENT.runs if not r.paced and r.samples_observed_ns_per_move)
    every_run = section_table(page, "every-run", "overhead µs [95 % CI]")
    titles = every_run.locator(".dt-scroll-body td span[title]").evaluate_all("spans => spans.map(s => s.title)")
    assert any(number_text(row.samples_observed_ns_per_move[0]) in title and "bare:" in title for title in titles)
    hover = page.locator(f"section#technique-{row.method} .plotly-graph-div").first.evaluate(
        "div => div.data.flatMap(trace => trace.hovertext || [])")
    assert any("observed:" in text and "95 % CI" in text for text in hover)


def test_a_screenshot_is_kept(browser):
    page, _, _ = browser
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {ARTIFACTS / "report-top.png": "main", ARTIFACTS / "report-every-run.png": "section#every-run",
             ARTIFACTS / "report-technique.png": "section[id^='technique-']"}
    for path, where in shots.items():
        page.locator(where).first.scroll_into_view_if_needed()
        page.screenshot(path=str(path))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot kept: {path}")  # left in place for whoever looks at the run


def test_cells_not_measured_and_columns_of_one_title_break_nothing(tmp_path):
    tables = [Table(["technique", "target", "ns"], [["a", "go", 3.0], ["b", "cgo", 1.0], ["c", "go", 2.0]],
                    filters=["technique", "target"], raw=[[None, None, "3, 3, 3"]] * 3),
              # two columns of one title, a value not measured (NaN) and none at all
              Table(["caught in", "caught in"], [[float("nan"), None], [1.5, "**2** of 6"]])]
    page_path = write_html(tmp_path / "report.html", "made up", "A *made-up* page.",
                           [Section("Made-up tables", "made-up", "Two tables.", tables)])
    with opened(page_path, tmp_path / "profile") as (page, requests, errors):
        assert errors == [] and page.locator("section#made-up table.dataTable").count() >= 2
