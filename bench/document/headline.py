"""The article's table, measured: one row per technique at the top of results/README.md, the
article's claims judged beside it, and a few sentences, all written from headline.json, which
`tapbench report` writes beside the README. Reads the results document only.

The selection rule is fixed before anything is measured, never chosen by value:

- A technique's row is its default variant (the options it runs with unless told), on the
  first target it declares, one writer, flat out, in the group the sweep plan declares its
  primary one (metadata `primary_groups`: the group it runs beside its floor), in its default
  placement (the one `run` and `watch` use). The same configuration in the other placement is
  named beside it (`other_row`).
- A claim is judged on that row, or, for a claim about another variant (eBPF's ~80 ns is the
  sys_enter_write tracepoint), on that variant's row in the same group and placement.
- Latency is the p99 of what `watch` runs: the technique's live options in its default
  placement, paced at the article's 20,000 moves/s.
- A row flagged ⚠ (unstable) keeps its ⚠ here.

Verdicts come from 95 % intervals, never from a median alone: *holds* when the interval lies
within the claim's tolerance, *does not hold* when it lies beyond it, *undetermined* when it
straddles the line, *not comparable* when nothing measured can be held against the claim.
"""
from __future__ import annotations

import json
import re

import numpy as np
from tabulate import tabulate

from bench.document.rows import Document, Row, noticed_by_opponent

# The article's table, in its order; the techniques added since follow, then the peers.
ARTICLE_ORDER = ["ptrace injection", "LD_PRELOAD hook", "eBPF tracepoint"]
PACED_RATE = 20_000  # the article's rate, at which latency is compared
# "~X" holds when the whole 95 % interval is at most this many times X (cheaper always holds).
ABOUT_FACTOR = 2.0
HOLDS, FAILS, UNDETERMINED, NOT_COMPARABLE = "holds", "does not hold", "undetermined", "not comparable"
VERDICTS = (HOLDS, FAILS, UNDETERMINED, NOT_COMPARABLE)
# The aspects the backends declare claims on (methods/base.py, claim()), as the README names them.
ASPECTS = {"overhead_ns": "overhead", "ceiling_per_s": "ceiling", "intrusiveness": "intrusiveness",
           "privileges": "privileges", "kernel_dependence": "kernel dependence"}
HEADLINE_FORMAT = 1
OVERHEAD_INTERVAL = ("bootstrap 95 % interval of the median of the paired (observed − bare) per-move "
                     "times, one pair per repeat")
COST_INTERVAL = ("bootstrap 95 % interval of the median over the repeats of the whole CPU cost per event: "
                 "the target's extra loop CPU plus the observer's, each repeat against its own bare run")
RULES = {
    "row": "the technique's default variant, its first target, one writer, flat out, in the sweep's "
           "declared primary group for it, in its default placement; the other placement's row beside it",
    "overhead_ns": f"'~X' holds when the 95 % interval of the overhead per move lies at or below "
                   f"{ABOUT_FACTOR:g}× X, does not hold when it lies above, undetermined when it straddles; "
                   "judged on the technique's row, or on the claim's variant in the same group and placement",
    "ceiling_per_s": "holds when a rate at or above the claim held on one CPU (shared placement), does not "
                     "hold when a rate at or below it failed, undetermined otherwise",
    "intrusiveness": "'zero' holds when the opponent's own self-check noticed nothing in any repeat of the "
                     "technique's row; other intrusiveness claims are qualitative: not comparable",
    "privileges": "holds when every least-privilege probe needed no more than the capabilities claimed and "
                  "the same capabilities worked for an unprivileged user; root only otherwise",
    "kernel_dependence": "eBPF's 'weak (CO-RE)' holds when the CO-RE object loads and captures exactly on this "
                         "kernel with the kernel headers and bcc hidden; the others are declared, not measured: "
                         "not comparable",
    "latency": f"p99 of what `watch` runs: the live options in the default placement, at {PACED_RATE:,}/s",
}


def techniques_in_order(document: Document) -> list[str]:
    """The article's three first, then the others, then the reference peers."""
    def order(name: str) -> tuple:
        info = document.info(name)
        article = info.get("article_name")
        return (ARTICLE_ORDER.index(article) if article in ARTICLE_ORDER else len(ARTICLE_ORDER),
                bool(info.get("reference_peer")), name)
    return sorted((name for name, info in document.methods.items() if not info.get("baseline")), key=order)


def runs_variant(options: dict, wanted: dict, defaults: dict) -> bool:
    """Whether a variant's options are the wanted ones (an option not recorded had its default)."""
    return all(options.get(name, defaults.get(name)) == value for name, value in wanted.items())


def is_default(entry: dict | Row, info: dict) -> bool:
    options = entry.options if isinstance(entry, Row) else entry.get("options") or {}
    defaults = info.get("default_options", {})
    return runs_variant(options, defaults, defaults)


def _one(rows: list[Row], what: str) -> Row | None:
    if len(rows) > 1:
        raise ValueError(f"the selection rule found {len(rows)} rows for {what}: {[r.identity() for r in rows]}")
    return rows[0] if rows else None


def chosen_rows(document: Document, name: str, variant: dict | None = None,
                placement: str | None = None) -> tuple[Row | None, Row | None]:
    """(the technique's row, its other placement's row) by the selection rule; variant: other
    options than the defaults (a claim's), placement: another placement than the default."""
    info = document.info(name)
    group = (document.metadata.get("primary_groups") or {}).get(name)
    defaults = info.get("default_options", {})
    wanted = defaults | (variant or {})
    target = (info.get("targets") or ["go"])[0]
    candidates = [r for r in document.runs if r.method == name and r.group == group and r.target == target
                  and r.goroutines == 1 and not r.paced and runs_variant(r.options, wanted, defaults)]
    placement = placement or info.get("default_placement", "free")
    row = _one([r for r in candidates if r.placement == placement], f"{name} in {placement}")
    other = _one([r for r in candidates if r.placement != placement], f"{name} outside {placement}")
    return row, other


def live_row(document: Document, name: str) -> Row | None:
    """What `watch` runs, paced at the article's rate: the live options (and, in split, the spin
    before each sleep) in the technique's default placement."""
    info = document.info(name)
    placement = info.get("default_placement", "free")
    defaults = info.get("default_options", {})
    live = defaults | info.get("live_options", {})
    if placement == "split" and info.get("live_spin_us"):
        live |= {"spin_us": info["live_spin_us"]}
    target = (info.get("targets") or ["go"])[0]
    return _one([r for r in document.runs if r.method == name and r.paced and r.rate == PACED_RATE
                 and r.placement == placement and r.target == target and r.goroutines == 1
                 and runs_variant(r.options, live, defaults)], f"{name} live at {PACED_RATE}/s")


def overhead_cell(row: Row) -> dict:
    value, low, high = row.overhead_interval_ns
    slowdown_low, slowdown_high = row.overhead_ratio_ci
    return {"value": value, "interval": [low, high], "interval_of": OVERHEAD_INTERVAL,
            "slowdown": row.overhead_ratio, "slowdown_interval": [slowdown_low, slowdown_high],
            "placement": row.placement, "unstable": list(row.unstable)}


def cost_cell(row: Row) -> dict | None:
    """What watching the row cost the machine per event, counted whole (None: not measured, in
    results older than format 5)."""
    if row.cpu_cost_ns_per_event is None:
        return None
    return {"value": row.cpu_cost_ns_per_event, "interval": list(row.cpu_cost_ci), "interval_of": COST_INTERVAL,
            "target_extra_ns": row.target_extra_cpu_ns_per_move, "observer_ns": row.observer_cpu_ns_per_move,
            "placement": row.placement}


def judge_overhead(claim: dict, cell: dict) -> tuple[str, str]:
    line = ABOUT_FACTOR * claim["value"]
    low, high = cell["interval"]
    span = f"{low / claim['value']:.1f}–{high / claim['value']:.1f}× the claim"
    if high <= line:
        return HOLDS, f"{span}; holds up to {ABOUT_FACTOR:g}×"
    if low > line:
        return FAILS, f"{span}; holds up to {ABOUT_FACTOR:g}×"
    return UNDETERMINED, f"{span}: the interval straddles {ABOUT_FACTOR:g}×"


def judge_ceiling(claim: dict, ceiling: dict | None) -> tuple[str, str]:
    if ceiling is None:
        return NOT_COMPARABLE, "not measured on one CPU"
    held, failed = ceiling["ceiling"], ceiling["first_failure"]
    if held is not None and held >= claim["value"]:
        return HOLDS, f"{held:,.0f}/s held, {held / claim['value']:.1f}× the claim"
    if failed is not None and failed <= claim["value"]:
        return FAILS, f"{failed:,.0f}/s failed"
    return UNDETERMINED, "no probe at or across the claimed rate"


def judge_intrusiveness(claim: dict, noticed: list[str]) -> tuple[str, str]:
    if claim["text"].startswith("zero"):
        return (HOLDS, "its self-check saw nothing") if not noticed else (FAILS, "it saw " + ", ".join(noticed))
    return NOT_COMPARABLE, "qualitative"


def judge_core(probe: dict | None) -> tuple[str, str]:
    """"weak (CO-RE)" holds when the CO-RE object loaded and captured exactly on this kernel with
    the kernel headers and bcc (its compiler) out of reach."""
    if probe is None or not probe.get("measured"):
        return NOT_COMPARABLE, "not measured" + (f": {probe['why']}" if probe else "")
    if probe["core"]["exact"]:
        return HOLDS, "the CO-RE object ran exactly without kernel headers or a compiler"
    return FAILS, f"the CO-RE object did not run without headers: {probe['core']['error']}"


def capability_set(text: str | None) -> set[str] | None:
    """The capabilities a minimum or a claim names ("none": the empty set)."""
    if text is None:
        return None
    return set(re.findall(r"CAP_[A-Z_]+", text))


def judge_privileges(claim: dict, probes: list[dict]) -> tuple[str, str]:
    if not probes:
        return NOT_COMPARABLE, "not measured"
    claimed = capability_set(claim["text"])
    for probe in probes:
        needed = capability_set(probe["minimum"])
        if needed is None:
            return FAILS, f"{probe['mode']}: none of the sets tried worked"
        if not needed <= claimed:
            return FAILS, f"{probe['mode']} needed {probe['minimum']}"
    for probe in probes:
        as_user = probe.get("as_user")
        if as_user is None:
            return UNDETERMINED, f"{probe['mode']}: not tried as an unprivileged user"
        if not as_user["worked"]:
            return FAILS, f"root only: as uid {as_user['uid']} with them, {probe['mode']} failed"
    return HOLDS, "as an unprivileged user too"


def _claims(info: dict, aspect: str) -> list[dict]:
    return [c for c in info.get("claims", []) if c["aspect"] == aspect]


def privilege_probes(document: Document, name: str) -> list[dict]:
    info = document.info(name)
    return [p for p in document.section("privileges") if p["method"] == name and is_default(p, info)]


def technique(document: Document, name: str) -> dict:
    """One technique's entry of headline.json: its rows, cells and judged claims."""
    info = document.info(name)
    entry = {"name": name, "article_name": info.get("article_name"),
             "reference_peer": bool(info.get("reference_peer")), "row": None, "other_row": None,
             "cells": {}, "claims": []}
    skipped = next((s["reason"] for s in document.skipped if s["method"] == name), None)
    row, other = chosen_rows(document, name)
    if row is None:
        entry["missing"] = f"skipped: {skipped}" if skipped else (
            "not measured in this sweep" if other is None else f"measured in {other.placement} only")
        if other is None:
            return entry
    shown = row or other
    entry |= {"label": document.label(shown), "row": shown.identity(),
              "other_row": other.identity() if row is not None and other is not None else None}
    cells = entry["cells"]
    cells["overhead_ns"] = overhead_cell(shown)
    cells["other_placement"] = overhead_cell(other) if row is not None and other is not None else None
    cells["cpu_cost_ns_per_event"] = cost_cell(shown)
    cells["other_placement_cpu_cost_ns_per_event"] = cost_cell(other) if row is not None and other is not None else None
    ceiling = next((c for c in document.section("ceilings") if c["method"] == name and c.get("placement") == "shared"
                    and is_default(c, info)), None)
    cells["ceiling_per_s"] = None if ceiling is None else {
        "value": ceiling["ceiling"], "first_failure": ceiling["first_failure"], "limited_by": ceiling["limited_by"],
        "placement": "shared"}
    live = live_row(document, name)
    cells["latency_p99_ns"] = None if live is None or live.latency_p99_ns is None else {
        "value": live.latency_p99_ns, "row": live.identity(), "label": document.label(live),
        "latency_from": live.latency_from}
    noticed = noticed_by_opponent(shown.self_checks)
    cells["noticed"] = noticed
    probes = privilege_probes(document, name)
    cells["privileges"] = [{"mode": p.get("mode", "launch"), "minimum": p["minimum"], "as_user": p.get("as_user")}
                           for p in probes]
    attach = next((a for a in document.section("attach") if a["method"] == name), None)
    cells["attach"] = {"possible": bool(info.get("can_attach")), "why_not": info.get("attach_unavailable"),
                       "first_move_ms": float(np.median(attach["first_move_ms"]))
                       if attach and attach["first_move_ms"] else None}
    cells["dependence"] = info.get("dependence") or None
    for claim in info.get("claims", []):
        judged = {"aspect": claim["aspect"], "text": claim["text"], "value": claim["value"], "row": None}
        if claim["aspect"] == "overhead_ns":
            judged_row = shown if runs_variant(shown.options, claim["when"], info.get("default_options", {})) \
                else chosen_rows(document, name, claim["when"], shown.placement)[0]
            if judged_row is None:
                judged |= {"verdict": NOT_COMPARABLE, "why": "its variant was not measured beside the row"}
            else:
                cell = overhead_cell(judged_row)
                verdict, why = judge_overhead(claim, cell)
                judged |= {"verdict": verdict, "why": why, "row": judged_row.identity(),
                           "label": document.label(judged_row), "measured": cell}
        elif claim["aspect"] == "ceiling_per_s":
            verdict, why = judge_ceiling(claim, ceiling)
            judged |= {"verdict": verdict, "why": why, "measured": cells["ceiling_per_s"]}
        elif claim["aspect"] == "intrusiveness":
            verdict, why = judge_intrusiveness(claim, noticed)
            judged |= {"verdict": verdict, "why": why, "row": shown.identity(), "measured": noticed}
        elif claim["aspect"] == "privileges":
            verdict, why = judge_privileges(claim, probes)
            judged |= {"verdict": verdict, "why": why, "measured": cells["privileges"]}
        elif claim["aspect"] == "kernel_dependence" and claim["when"].get("loader") == "core":
            probe = next(iter(document.section("dependence")), None)
            verdict, why = judge_core(probe)
            judged |= {"verdict": verdict, "why": why, "measured": probe}
        else:
            judged |= {"verdict": NOT_COMPARABLE, "why": "declared, not measured"}
        entry["claims"].append(judged)
    return entry


def headline_json(document: Document) -> dict:
    """What the headline shows and why, for machines and for people who check: headline.json."""
    meta = document.metadata
    return {"format": HEADLINE_FORMAT, "machine_id": meta.get("machine_id"), "date": meta.get("date"),
            "commit": meta.get("commit"), "rules": RULES,
            "primary_groups": meta.get("primary_groups") or {},
            "techniques": [technique(document, name) for name in techniques_in_order(document)]}


def write_headline_json(document: Document, path) -> None:
    path.write_text(json.dumps(headline_json(document), indent=1, ensure_ascii=False) + "\n")


# --- the Markdown, written from headline.json -------------------------------------------------

def us(ns: float | None) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1000:.2f} µs" if abs(ns) >= 1000 else f"{ns:.0f} ns"


def _span(low: float, high: float) -> str:
    """'[90, 150] ns' or '[8.20, 9.10] µs': an interval in one unit."""
    if max(abs(low), abs(high)) >= 1000:
        return f"[{low / 1000:.2f}, {high / 1000:.2f}] µs"
    return f"[{low:.0f}, {high:.0f}] ns"


def overhead_text(cell: dict | None) -> str:
    if cell is None:
        return "-"
    value = us(cell["value"]).split(" ")
    low, high = cell["interval"]
    return (f"{value[0]} {_span(low, high)}" + (" ⚠" if cell["unstable"] else "") + f", {cell['placement']}")


def cost_text(cell: dict | None) -> str:
    if cell is None:
        return "not measured"
    value = us(cell["value"]).split(" ")
    low, high = cell["interval"]
    return f"{value[0]} {_span(low, high)}"


def ceiling_text(cell: dict | None) -> str:
    if cell is None:
        return "-"
    return ("below 1,000/s" if cell["value"] is None else f"{cell['value']:,.0f}/s") + f" ({cell['limited_by']})"


def privileges_text(probes: list[dict]) -> str:
    if not probes:
        return "-"
    minima = sorted({p["minimum"] or "none of the sets tried" for p in probes})
    root_only = any(p["as_user"] and not p["as_user"]["worked"] for p in probes)
    return " / ".join(minima) + (", root only" if root_only else "")


def attach_text(cell: dict) -> str:
    if cell["first_move_ms"] is not None:
        return f"yes, first move in {cell['first_move_ms']:.0f} ms"
    return "yes (not measured)" if cell["possible"] else "no (launch only)"


def claim_lines(entry: dict) -> list[list[str]]:
    rows = []
    for claim in entry["claims"]:
        if claim["aspect"] == "overhead_ns" and claim.get("measured"):
            measured = overhead_text(claim["measured"])
            on = claim["label"]
        elif claim["aspect"] == "ceiling_per_s":
            measured, on = ceiling_text(claim.get("measured")), "one CPU"
        elif claim["aspect"] == "intrusiveness":
            measured, on = ", ".join(claim.get("measured") or []) or "nothing noticed", "the row"
        elif claim["aspect"] == "privileges":
            measured, on = privileges_text(claim.get("measured") or []), "the probes"
        elif claim["aspect"] == "kernel_dependence" and claim.get("measured"):
            measured, on = "headers and bcc hidden", "`ebpf (core)`"
        else:
            measured, on = "-", "-"
        rows.append([entry["name"], f"{ASPECTS[claim['aspect']]}: {claim['text']}", on, measured,
                     f"**{claim['verdict']}**: {claim['why']}"])
    return rows


def headline(document: Document) -> list[str]:
    data = headline_json(document)
    if not data["techniques"]:
        return []
    rows, claims = [], []
    for entry in data["techniques"]:
        name = f"**{entry['article_name'] or entry['name']}**" + (" (peer)" if entry["reference_peer"] else "")
        if entry["row"] is None:
            rows.append([name, entry["missing"], *["-"] * 7])
            continue
        cells = entry["cells"]
        latency = cells["latency_p99_ns"]
        rows.append([f"{name}<br>`{entry['label']}`", overhead_text(cells["overhead_ns"]),
                     cost_text(cells["cpu_cost_ns_per_event"]),
                     overhead_text(cells["other_placement"]), ceiling_text(cells["ceiling_per_s"]),
                     "not measured" if latency is None else f"{us(latency['value'])}",
                     ", ".join(cells["noticed"]) or "nothing", privileges_text(cells["privileges"]),
                     attach_text(cells["attach"])])
        claims += claim_lines(entry)
    table = tabulate(rows, headers=["technique", "overhead/move [95 % CI], default placement",
                                    "CPU cost/event [95 % CI], the same row", "other placement",
                                    "ceiling, one CPU", f"p99 live, {PACED_RATE // 1000}k/s",
                                    "opponent noticed", "least privilege", "attach"],
                     tablefmt="github", disable_numparse=True)
    lines = ["## The article's table, measured", "", table, "", *summary(data), ""]
    if claims:
        lines += ["### The article's claims", "",
                  tabulate(claims, headers=["technique", "claim", "judged on", "measured", "verdict"],
                           tablefmt="github", disable_numparse=True), ""]
    lines += [
        "*How this table is chosen and judged* (`bench/document/headline.py`, the same in "
        "[headline.json](headline.json)): " + "; ".join(f"*{ASPECTS.get(aspect, aspect)}*: {rule}"
                                                         for aspect, rule in RULES.items()) + ". "
        f"Overhead per move is the median of the paired (observed − bare) per-move times, its interval the "
        f"{OVERHEAD_INTERVAL}: what the watched program feels. CPU cost per event is what the machine pays, "
        f"counted whole (the observer's CPU too), its interval the {COST_INTERVAL}; overhead claims are "
        f"judged on the slowdown, as the article states them. ⚠: the row is unstable ([Every run](#every-run) says why). Ceilings, latency, "
        "privileges and attach are detailed in the [Throughput ceiling](#throughput-ceiling), "
        "[Observation latency](#observation-latency) and [Intrusiveness matrix](#intrusiveness-matrix) "
        "sections; each technique's declared kernel and runtime dependence is there too."]
    return lines


def summary(data: dict) -> list[str]:
    """Sentences written from headline.json."""
    shown = [t for t in data["techniques"] if t["row"] is not None]
    if not shown:
        return []
    by_cost = sorted(shown, key=lambda t: t["cells"]["overhead_ns"]["value"])
    cheapest, dearest = by_cost[0], by_cost[-1]
    sentences = [f"Cheapest per move in its default placement: {cheapest['name']}, "
                 f"{us(cheapest['cells']['overhead_ns']['value'])} ({cheapest['cells']['overhead_ns']['placement']})"]
    if dearest is not cheapest:
        ratio = dearest["cells"]["overhead_ns"]["value"] / max(cheapest["cells"]["overhead_ns"]["value"], 1)
        sentences[0] += (f"; the dearest, {dearest['name']}, {us(dearest['cells']['overhead_ns']['value'])} "
                         f"({dearest['cells']['overhead_ns']['placement']}): about {ratio:,.0f}× as much, a ratio of "
                         "the two medians, measured in different groups.")
    else:
        sentences[0] += "."
    unseen = [t["name"] for t in shown if not t["cells"]["noticed"]]
    if unseen:
        sentences.append(f"The opponent noticed nothing of {', '.join(unseen)}; it saw every other technique.")
    rough = [t["name"] for t in shown if t["cells"]["overhead_ns"]["unstable"]]
    if rough:
        sentences.append(f"The rows of {', '.join(rough)} are unstable (⚠): read their figures as rough.")
    judged = [(t["name"], c) for t in shown for c in t["claims"] if c["verdict"] != NOT_COMPARABLE]
    if judged:
        counts = {v: sum(c["verdict"] == v for _, c in judged) for v in (HOLDS, FAILS, UNDETERMINED)}
        sentences.append(f"Of the article's {len(judged)} claims that can be measured here: " + "; ".join(
            f"{verdict} ({counts[verdict]}): " + ", ".join(f"{name} {ASPECTS[c['aspect']]} {c['text']}"
                                                          for name, c in judged if c["verdict"] == verdict)
            for verdict in (HOLDS, FAILS, UNDETERMINED) if counts[verdict]) + ".")
    return [" ".join(sentences)]
