"""The uprobe's cost: tapbench's uprobe beside an independent one (bpftrace's), both only
counting, in the same run: whether the cost per call is the technique's or the machine's."""
from __future__ import annotations

import numpy as np

from bench.document.cells import us
from bench.document.rows import Document
from bench.document.section import Section, template
from bench.stats import median_interval

TITLE, ANCHOR = "The uprobe's cost", "the-uprobes-cost"
GROUP = "uprobe"  # the sweep group that runs both floors side by side
# Published per-call costs of a kernel uprobe, for scale (the sources are in DESIGN.md):
# Cloudflare's ebpf_exporter measured ~1.7 µs on a cgo target, bpftime ~2.5 µs.
PUBLISHED_UPROBE_NS = (1_700, 5_000)


def placement_line(document: Document, placement: str) -> str | None:
    rows = [r for r in document.runs if r.group == GROUP and r.placement == placement and r.capture == "count"]
    ours = next((r for r in rows if r.method == "uprobe"), None)
    peer = next((r for r in rows if r.method == "bpftrace"), None)
    if ours is None or peer is None:
        return None
    ratio, low, high = median_interval(np.divide(
        np.subtract(peer.samples_observed_ns_per_move, peer.samples_bare_ns_per_move),
        np.subtract(ours.samples_observed_ns_per_move, ours.samples_bare_ns_per_move)))
    verdict = "agree" if low <= 1 <= high else ("ours_dearer" if high < 1 else "peer_dearer")
    (value, ours_low, ours_high), (peer_value, peer_low, peer_high) = ours.overhead_interval_ns, peer.overhead_interval_ns
    return (f"- {placement}: `{document.label(ours)}` {us(value)} [{us(ours_low)}, {us(ours_high)}] µs a call, "
            f"`{document.label(peer)}` {us(peer_value)} [{us(peer_low)}, {us(peer_high)}] µs; the peer over "
            f"tapbench's, repeat by repeat: {ratio:.2f} [{low:.2f}, {high:.2f}]: {template('uprobe', verdict)}.")


def section(document: Document) -> Section | None:
    lines = [line for line in (placement_line(document, p) for p in ("shared", "split")) if line]
    if not lines:
        return None
    low, high = PUBLISHED_UPROBE_NS
    return Section(TITLE, ANCHOR, template("uprobe", low=us(low), high=us(high)) + "\n\n" + "\n".join(lines))
