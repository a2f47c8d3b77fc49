"""The plots can be read: no axes with more than ten series, each its own colour, the interval
drawn the verdicts' 95 % interval, the article's claims labelled on the plot, and no file larger
than 1,600 px on its longer side."""
import struct
from dataclasses import replace

import pytest
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D

from bench.document import plots
from tests.results_files import newest_document
from tests.test_report import DOCUMENT, RUN

STORED = newest_document()
needs_stored = pytest.mark.skipif(STORED is None, reason="no results/machines/*/latest.json stored")


@pytest.fixture
def stored_figures():
    built = plots.figures(STORED)
    yield built
    for figure in built.values():
        plots._pyplot().close(figure)


def png_size(path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def series_colour(handle):
    if isinstance(handle, ErrorbarContainer):
        handle = handle.lines[0]
    if isinstance(handle, Line2D):
        return to_rgba(handle.get_color())
    return tuple(handle.get_facecolor()[0])


def data_axes(figure):
    return [axes for axes in figure.get_axes() if axes.get_visible()]


@needs_stored
@pytest.mark.parametrize("document", [DOCUMENT, STORED], ids=["small", "stored"])
def test_every_png_fits_1600_pixels_on_its_longer_side(document, tmp_path):
    written = plots.draw(document, tmp_path)
    assert written
    for path in written:
        assert max(png_size(path)) <= 1600, path.name


@needs_stored
def test_no_axes_holds_more_than_ten_series_and_none_repeats_a_colour(stored_figures):
    assert set(stored_figures) == {plots.OVERHEAD_PNG, plots.LATENCY_PNG, plots.CEILING_PNG, plots.DUEL_PNG}
    for name, figure in stored_figures.items():
        for axes in data_axes(figure):
            handles, labels = axes.get_legend_handles_labels()
            assert 0 < len(labels) <= plots.MAX_SERIES, (name, axes.get_title(), labels)
            colours = [series_colour(handle) for handle in handles]
            assert len(set(colours)) == len(colours), (name, axes.get_title(), labels)


@needs_stored
def test_legends_sit_outside_the_data(stored_figures):
    for name, figure in stored_figures.items():
        figure.canvas.draw()
        for axes in data_axes(figure):
            legend = axes.get_legend()
            if legend is not None:
                assert not legend.get_window_extent().overlaps(axes.get_window_extent()), (name, axes.get_title())


def claim_texts(axes) -> list[str]:
    return [text.get_text() for text in axes.texts if text.get_gid() == "claim"]


def claim_positions(axes) -> list[float]:
    return [line.get_xdata()[0] for line in axes.lines if line.get_gid() == "claim"]


@needs_stored
def test_the_articles_claims_are_lines_labelled_on_the_plot(stored_figures):
    panels = {axes.get_title(loc="left"): axes for axes in data_axes(stored_figures[plots.OVERHEAD_PNG])}
    drawn = 0
    for method, claim in plots.claims_of(STORED, "overhead_ns"):
        if method in panels:
            assert claim["value"] in claim_positions(panels[method])
            assert any(claim["text"] in text for text in claim_texts(panels[method])), claim
            drawn += 1
    assert drawn == 3  # ~5 µs for ptrace, ~100 ns for preload, ~80 ns for eBPF's tracepoint
    one_cpu = next(axes for axes in data_axes(stored_figures[plots.CEILING_PNG])
                   if "one CPU" in axes.get_title(loc="left"))
    assert 20_000 in claim_positions(one_cpu) and any("20,000/s" in text for text in claim_texts(one_cpu))


@needs_stored
def test_the_overhead_whiskers_are_the_verdicts_95_percent_interval(stored_figures):
    row = next(r for r in STORED.runs if r.method == "preload" and not r.paced and r.placement == "split")
    _, low, high = row.overhead_interval_ns
    panel = next(axes for axes in data_axes(stored_figures[plots.OVERHEAD_PNG]) if axes.get_title(loc="left") == "preload")
    split = next(c for c in panel.containers if isinstance(c, ErrorbarContainer) and c.get_label() == "split")
    spans = [(segment[0][0], segment[1][0]) for segment in split.lines[2][0].get_segments()]
    assert any(abs(a - low) < 1e-6 and abs(b - high) < 1e-6 for a, b in spans)
    assert "95 % CI" in panel.get_xlabel() or "95 % CI" in stored_figures[plots.OVERHEAD_PNG].get_suptitle()


@needs_stored
def test_the_duel_keeps_placements_apart_and_draws_intervals(stored_figures):
    panels = data_axes(stored_figures[plots.DUEL_PNG])
    placements = {d["placement"] for d in STORED.section("duels")}
    assert len(panels) == len(placements)
    for axes in panels:
        placement = axes.get_title(loc="left").split(" ")[0]
        labels = axes.get_legend_handles_labels()[1]
        expected = {f"{STORED.label(d)} · {d['target']}" for d in STORED.section("duels") if d["placement"] == placement}
        assert set(labels) == expected
        assert len(axes.collections) >= len(labels)  # an interval band for each


def test_a_technique_with_many_latency_rows_gets_at_most_ten_lines():
    paced = [replace(RUN, paced=True, rate=20_000.0, group=f"paced {index}") for index in range(14)]
    document = replace(DOCUMENT, runs=[RUN, *paced])
    figure = plots.latency_figure(document)
    try:
        (axes,) = data_axes(figure)
        assert len(axes.get_legend_handles_labels()[1]) == plots.MAX_SERIES
    finally:
        plots._pyplot().close(figure)


def test_the_wilson_interval_holds_the_share_and_narrows_with_more_moves():
    low, high = plots.wilson_interval(50, 100)
    more_low, more_high = plots.wilson_interval(500, 1000)
    assert low < more_low < 0.5 < more_high < high
    assert plots.wilson_interval(0, 100)[0] == 0.0 and plots.wilson_interval(100, 100)[1] == pytest.approx(1.0)
