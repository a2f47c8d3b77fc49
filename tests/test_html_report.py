"""results/report.html, opened in a real browser (Debian's chromium, headless, driven by
Playwright): it loads from a file with no console error and fetches nothing, every technique
has its section, a click on a header sorts, a filter hides rows, hovering shows the raw repeats;
a screenshot is kept in tests/artifacts/ (git-ignored)."""
import re
from pathlib import Path

import pytest

from bench.document import plots
from bench.document.headline import headline_json
from bench.document.html import HtmlSection, HtmlTable, number_text, technique_sections, write_html
from bench.targets import ROOT
from tests.results_files import newest_document

CHROMIUM = Path("/usr/bin/chromium")
# Headless on a machine with no display, no sandbox (root), nothing fetched in the background.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT_MS = 30_000
DOCUMENT = newest_document()

pytestmark = [pytest.mark.timeout(150),
              pytest.mark.skipif(DOCUMENT is None, reason="no results/machines/*/latest.json stored")]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The report of the newest stored sweep: a section per technique, then a table made here
    with filters, and a PNG plot inlined."""
    out = tmp_path_factory.mktemp("report")
    drawn = plots.draw(DOCUMENT, out)
    made_up = [HtmlTable(["technique", "target", "ns"], [["a", "go", 3.0], ["b", "cgo", 1.0], ["c", "go", 2.0]],
                         filters=["technique", "target"], raw=[[None, None, "3, 3, 3"]] * 3),
               # two columns of one title, a value not measured (NaN) and none at all
               HtmlTable(["caught in", "caught in"], [[float("nan"), None], [1.5, "**2** of 6"]])]
    extra = HtmlSection("Plots and made-up tables", "extra", "A *made-up* table.", made_up, [drawn[0]])
    return write_html(out / "report.html", "tapbench results", "The **newest** sweep.",
                      technique_sections(DOCUMENT, headline_json(DOCUMENT)) + [extra])


@pytest.fixture
def browser(report, tmp_path):
    """The report open in headless chromium; the requests it made and the errors it logged.
    One browser per test: conftest's nothing_left_behind ends every process a test leaves."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make venv")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: sudo make setup (Debian's chromium)")
    requests, errors = [], []
    with sync_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.as_uri())
            page.wait_for_function("() => [...document.querySelectorAll('main table[id^=\"table-\"]')]"
                                   ".every(t => t.classList.contains('dataTable'))")
            page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')]"
                                   ".every(d => d.querySelector('.main-svg'))")
            yield page, requests, errors
        finally:
            context.close()


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
    assert page.locator("main table[id^='table-']").count() > 0


def test_every_technique_has_its_section(browser):
    page, _, _ = browser
    for entry in headline_json(DOCUMENT)["techniques"]:
        section = page.locator(f"section#technique-{entry['name']}")
        assert section.locator("h2").inner_text().startswith(entry["name"])
        rows = [r for r in DOCUMENT.runs if r.method == entry["name"]]
        if rows:
            assert DOCUMENT.label(rows[0]) in section.inner_text()


def column_index(container, header: str) -> int:
    titles = container.locator(".dt-scroll-head thead th .dt-column-title").all_inner_texts()
    return titles.index(header)


def column(container, index: int) -> list[str]:
    return container.locator(f".dt-scroll-body tbody tr td:nth-child({index + 1})").all_inner_texts()


def numbers(texts: list[str]) -> list[float]:
    return [float(t.replace(",", "")) for t in texts if t.strip()]


def rows_table(page, method: str):
    """The container of a technique's table of every row."""
    return page.locator(f"section#technique-{method} .dt-container").filter(has_text="overhead ns/move").first


def test_clicking_a_header_sorts_its_rows(browser):
    page, _, _ = browser
    method = max({r.method for r in DOCUMENT.runs}, key=lambda m: sum(r.method == m for r in DOCUMENT.runs))
    table = rows_table(page, method)
    index = column_index(table, "overhead ns/move")
    before = numbers(column(table, index))
    header = table.locator(".dt-scroll-head thead th").nth(index)
    header.locator(".dt-column-title").click()
    page.wait_for_function("([id, i]) => { const v = [...document.querySelectorAll(`#${id} tbody tr td:nth-child(${i})`)]"
                           ".map(td => parseFloat(td.innerText.replace(/,/g, ''))).filter(x => !isNaN(x));"
                           " return v.length > 1 && v.every((x, k) => k == 0 || v[k - 1] <= x); }",
                           arg=[table.locator(".dt-scroll-body table").get_attribute("id"), index + 1])
    after = numbers(column(table, index))
    assert after == sorted(after) and after != before


def test_a_filter_hides_rows(browser):
    page, _, _ = browser
    # A technique measured on more than one target, and its rarest: fewer rows than a page.
    method, target = min(((r.method, r.target) for r in DOCUMENT.runs
                          if len({o.target for o in DOCUMENT.runs if o.method == r.method}) > 1),
                         key=lambda pair: sum((r.method, r.target) == pair for r in DOCUMENT.runs))
    table = rows_table(page, method)
    index = column_index(table, "target")
    shown = len(column(table, index))
    table.locator(".dt-scroll-head thead th").nth(index).locator("button.dtcc-button_dropdown").click()
    page.locator(f".dtcc-dropdown button[aria-label='{target}']").click()
    page.keyboard.press("Escape")
    expected = sum(r.method == method and r.target == target for r in DOCUMENT.runs)
    page.wait_for_function("([id, n]) => document.querySelectorAll(`#${id} tbody tr`).length == n",
                           arg=[table.locator(".dt-scroll-body table").get_attribute("id"), expected])
    assert set(column(table, index)) == {target} and expected < shown


def test_hovering_shows_the_raw_repeats(browser):
    page, _, _ = browser
    row = next(r for r in DOCUMENT.runs if not r.paced and r.samples_observed_ns_per_move)
    table = rows_table(page, row.method)
    titles = table.locator(".dt-scroll-body td span[title]").evaluate_all("spans => spans.map(s => s.title)")
    assert any(number_text(row.samples_observed_ns_per_move[0]) in title and "bare:" in title for title in titles)
    hover = page.locator(f"section#technique-{row.method} .plotly-graph-div").first.evaluate(
        "div => div.data.flatMap(trace => trace.hovertext || [])")
    assert any("observed:" in text and "95 % CI" in text for text in hover)


def test_a_screenshot_is_kept(browser):
    page, _, _ = browser
    ARTIFACTS.mkdir(exist_ok=True)
    top, section = ARTIFACTS / "report-top.png", ARTIFACTS / "report-technique.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(top))
    page.locator("section[id^='technique-']").first.scroll_into_view_if_needed()
    page.screenshot(path=str(section))
    for path in (top, section):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot kept: {path}")  # left in place for whoever looks at the run
