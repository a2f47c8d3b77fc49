"""The headline's cells and sentences in words, written from headline.json alone
(bench/document/headline.py): the article's table measured (bench/document/sections/headline.py
lays it out), its claims with their verdicts and what would have refuted them, and sentences
that compare only what was measured side by side."""
from __future__ import annotations

from bench.document.headline import ASPECTS, PACED_RATE
from bench.document.verdicts import FAILS, HOLDS, NOT_COMPARABLE, UNDETERMINED, rate_text


def us(ns: float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1000:.2f} µs" if abs(ns) >= 1000 else f"{ns:.0f} ns"


def _span(low: float, high: float) -> str:
    """'[90, 150] ns' or '[8.20, 9.10] µs': an interval in one unit."""
    if max(abs(low), abs(high)) >= 1000:
        return f"[{low / 1000:.2f}, {high / 1000:.2f}] µs"
    return f"[{low:.0f}, {high:.0f}] ns"


def figure_text(value: float, low: float, high: float) -> str:
    """'144 [130, 176] ns', '9.64 [9.20, 10.01] µs': a median and its interval in ONE unit, the
    one the largest of the three asks for (800 [600, 1200] ns, never 800 [0.60, 1.20] µs)."""
    if max(abs(value), abs(low), abs(high)) >= 1000:
        return f"{value / 1000:.2f} {_span(low, high)}"
    return f"{value:.0f} [{low:.0f}, {high:.0f}] ns"


def overhead_text(cell: dict | None, placement: bool = True) -> str:
    """'144 [130, 176] ns ⚠, split': the median, its 95 % interval, the flag, the placement."""
    if cell is None:
        return "-"
    return (figure_text(cell["value"], *cell["interval"]) + (" ⚠" if cell["unstable"] else "")
            + (f", {cell['placement']}" if placement else ""))


def cost_text(cell: dict | None) -> str:
    if cell is None:
        return "not measured"
    return figure_text(cell["value"], *cell["interval"])


def ceiling_text(cell: dict | None) -> str:
    """'held 1.8 M/s, failed 2.0 M/s (2 searches)': where the ceiling lies, as the ladder knows it."""
    if cell is None:
        return "-"
    count = len(cell["searches"])
    held = "a search held nothing" if cell["held"] is None else f"held {rate_text(cell['held'])}"
    failed = "none failed" if cell["failed"] is None else f"failed {rate_text(cell['failed'])}"
    return f"{held}, {failed} ({count} search{'es' if count > 1 else ''})"


def latency_text(cell: dict | None) -> str:
    if cell is None:
        return "not measured"
    spread = cell.get("repeats_range")
    return us(cell["value"]) + (f" ({us(spread[0])}–{us(spread[1])})" if spread else "")


def privileges_text(probes: list[dict]) -> str:
    """The least capabilities root needed, and what an unprivileged user with them met."""
    if not probes:
        return "-"
    # capabilities without their CAP_ prefix: the cell stays narrow
    minima = sorted({(p["minimum"] or "none worked").replace("CAP_", "") for p in probes})
    users = [p["as_user"] for p in probes if p.get("as_user")]
    if not users:
        return " / ".join(minima)
    worked = sum(u["worked"] for u in users)
    return " / ".join(minima) + f"; as uid 65534: {worked}/{len(users)} ran"


def attach_text(cell: dict) -> str:
    if cell["first_move_ms"] is not None:
        low, high = cell["range_ms"]
        return f"yes, first move in {cell['first_move_ms']:.0f} ms ({low:.0f}–{high:.0f})"
    return "yes (not measured)" if cell["possible"] else "no (launch only)"


def measured_text(claim: dict) -> tuple[str, str]:
    """(what it was judged on, the figure it was judged on)."""
    aspect, measured = claim["aspect"], claim.get("measured")
    if aspect == "overhead_ns" and measured:
        return f"`{claim['label']}`", overhead_text(measured)
    if aspect == "ceiling_per_s":
        return "one CPU", ceiling_text(measured)
    if aspect == "intrusiveness" and claim.get("part") == "unmodified":
        return "its self-check", ", ".join(measured or []) or "nothing noticed"
    if aspect == "intrusiveness" and claim.get("part") == "unslowed":
        return "slowdowns [95 % CI]", "see why"
    if aspect == "privileges":
        return "the probes", privileges_text(measured or [])
    if aspect == "kernel_dependence" and measured:
        return "kernels", ", ".join(measured["kernels"])
    return "-", "-"


def claim_lines(entry: dict) -> list[list[str]]:
    rows = []
    for claim in entry["claims"]:
        on, measured = measured_text(claim)
        part = f" — {claim['part']}" if claim.get("part") else ""
        why = f"**{claim['verdict']}**: {claim['why']}"
        if claim.get("groups_disagree"):
            why += f" (groups measuring the same configuration disagree: {claim['groups_disagree']})"
        if claim.get("machines_disagree"):
            differences = "; ".join(f"`{m}`: {note}" for m, note in claim.get("machine_differences", {}).items())
            why += f" (machines disagree: {claim['machines_disagree']}; they differ in: {differences})"
        rows.append([entry["name"], f"{ASPECTS[claim['aspect']]}: {claim['text']}{part}", on, measured, why])
    return rows


def table_row(entry: dict) -> list[str]:
    name = f"**{entry['article_name'] or entry['name']}**" + (" (peer)" if entry["reference_peer"] else "")
    cells = entry["cells"]
    default = cells.get("default_variant")
    return [f"{name}<br>`{entry['label']}`", overhead_text(cells["overhead_ns"]),
            "-" if default is None else f"`{default['label']}`: {overhead_text(default, placement=False)}",
            cost_text(cells["cpu_cost_ns_per_event"]), overhead_text(cells["other_placement"]),
            ceiling_text(cells["ceiling_per_s"]), latency_text(cells["latency_p99_ns"]),
            ", ".join(cells["noticed"]) or "nothing", privileges_text(cells["privileges"]),
            attach_text(cells["attach"])]


HEADERS = ["technique", "overhead/move [95 % CI], default placement", "default variant [95 % CI]",
           "CPU cost/event [95 % CI]", "other placement [95 % CI]", "ceiling, one CPU",
           f"p99 live, {PACED_RATE // 1000}k/s (repeats)", "opponent noticed", "least privilege (capabilities)",
           "attach (new process)"]


def summary(data: dict) -> list[str]:
    """Sentences written from headline.json, each from figures measured side by side."""
    shown = [t for t in data["techniques"] if t["row"] is not None]
    if not shown:
        return []
    sentences = [cheapest_sentence(shown)]
    unseen = [t["name"] for t in shown if not t["cells"]["noticed"]]
    if unseen:
        sentences.append(f"The opponent noticed nothing of {', '.join(unseen)}; it saw every other technique.")
    rough = sorted({c["label"] for t in shown for c in [t["cells"]["overhead_ns"], t["cells"].get("default_variant")]
                    if c and c["unstable"]})
    if rough:
        sentences.append(f"The rows of {', '.join(rough)} are unstable (⚠): read their figures as rough; no "
                         "verdict rests on them alone.")
    judged = [(t["name"], c) for t in shown for c in t["claims"] if c["verdict"] != NOT_COMPARABLE]
    if judged:
        counts = {v: [f"{name} {ASPECTS[c['aspect']]} {c['text']}" + (f" ({c['part']})" if c.get("part") else "")
                      for name, c in judged if c["verdict"] == v] for v in (HOLDS, FAILS, UNDETERMINED)}
        sentences.append(f"Of the article's {len(judged)} claims that can be measured here: " + "; ".join(
            f"{verdict} ({len(which)}): {', '.join(which)}" for verdict, which in counts.items() if which) + ".")
    return [" ".join(sentences)]


def cheapest_sentence(shown: list[dict]) -> str:
    """The cheapest per move only where its 95 % interval lies below every other's; otherwise
    the techniques it cannot be told apart from. No ratio of figures from different runs."""
    by_cost = sorted(shown, key=lambda t: t["cells"]["overhead_ns"]["value"])
    cheapest = by_cost[0]["cells"]["overhead_ns"]
    tied = [t for t in by_cost[1:] if t["cells"]["overhead_ns"]["interval"][0] <= cheapest["interval"][1]]
    figure = f"{overhead_text(cheapest)}"
    if not tied:
        return (f"Cheapest per move in the placement shown: {by_cost[0]['name']}, {figure}; every other "
                "technique's interval lies above it.")
    others = ", ".join(f"{t['name']} ({overhead_text(t['cells']['overhead_ns'])})" for t in tied)
    return (f"Cheapest per move in the placement shown: not told apart: {by_cost[0]['name']} ({figure}) and "
            f"{others} have overlapping intervals.")


