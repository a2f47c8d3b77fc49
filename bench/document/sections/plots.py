"""Plots: the four PNGs bench/document/plots.py draws beside the report."""
from __future__ import annotations

from pathlib import Path

from bench.document.plots import PLOTS
from bench.document.section import Image, Section

TITLE, ANCHOR = "Plots", "plots"


def section(drawn: list[Path] | None, folder: Path | None = None) -> Section | None:
    """drawn: the PNG files drawn (None: all of PLOTS, named only, in folder if given)."""
    names = {Path(p).name: Path(p) for p in drawn} if drawn is not None else \
        {name: (folder or Path()) / name for name, _ in PLOTS}
    images = [Image(names[name], title) for name, title in PLOTS if name in names]
    return Section(TITLE, ANCHOR, figures=images) if images else None
