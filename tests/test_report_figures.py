"""`tapbench report` on the stored sweeps writes the same numbers before and after the reading
side is rebuilt (issue 40): every cell of every table of today's READMEs, and every figure of
their prose, is still reported, in README.md or in report.html beside it, with the same value;
every headline.json is unchanged. The snapshot (tests/fixtures/report_figures.json.gz) was
taken from the reports as they were; `python -m tests.report_figures` takes it again once the
stored sweeps change."""
import json

import pytest

from tests.report_figures import (html_prose, html_tables, keyed, markdown_prose, markdown_tables, numbers,
                                  read_fixture, regenerate, stored_inputs)

FIXTURE = read_fixture()

pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(FIXTURE["inputs"] != stored_inputs(),
                                 reason="the stored sweeps changed since the snapshot: python -m tests.report_figures")]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    return out, regenerate(out)


def reported(readme) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """The README's tables and report.html's (kept apart: each names its tables by its own
    headings), and the prose of both under each heading."""
    page = readme.with_name("report.html")
    text, html = readme.read_text(), page.read_text() if page.exists() else ""
    prose = markdown_prose(text)
    for heading, found in html_prose(html).items():
        prose[heading] = prose.get(heading, "") + " " + found
    return [keyed(markdown_tables(text)), keyed(html_tables(html))], prose


@pytest.mark.parametrize("name", sorted(FIXTURE["reports"]))
def test_every_cell_of_every_table_is_reported_with_the_same_value(written, name):
    out, names = written
    assert name in names
    places, _ = reported(out / name)
    before = FIXTURE["reports"][name]["cells"]
    lost = [key for key in before if all(key not in cells for cells in places)]
    changed = [f"{key}: {before[key]!r} -> {[c[key] for c in places if key in c]}" for key in before
               if key not in lost and not any(cells.get(key) == before[key] for cells in places)]
    assert not lost, f"{len(lost)} cells of {len(before)} no longer reported, e.g. {lost[:5]}"
    assert not changed, f"{len(changed)} cells changed, e.g. {changed[:5]}"


@pytest.mark.parametrize("name", sorted(FIXTURE["reports"]))
def test_every_figure_of_the_prose_is_reported_under_its_heading(written, name):
    out, _ = written
    places, prose = reported(out / name)
    missing = {}
    for heading, figures in FIXTURE["reports"][name]["prose_numbers"].items():
        cells = " ".join(value for cells in places for key, value in cells.items()
                         if key.split(" ¦ ")[0].split(" #")[0] == heading)
        now = numbers(prose.get(heading, "") + " " + cells)
        if set(figures) - now:
            missing[heading] = sorted(set(figures) - now)
    assert not missing


@pytest.mark.parametrize("name", sorted(FIXTURE["reports"]))
def test_headline_json_is_unchanged(written, name):
    out, _ = written
    assert json.loads((out / name).with_name("headline.json").read_text()) == FIXTURE["reports"][name]["headline"]
