"""The article's table, measured: one row per technique at the top of results/README.md, the
article's claims judged beside it (bench/document/verdicts.py), and a few sentences, all written
from headline.json, which `tapbench report` writes beside the README. Reads the results
document only.

The selection rule is fixed before anything is measured, never chosen by value:

- A technique's row is the article's variant of it where the article names one (eBPF: the
  sys_enter_write tracepoint), otherwise its default variant (the options it runs with unless
  told); on the first target it declares, one writer, flat out, in the group the sweep plan
  declares its primary one (metadata `primary_groups`), in its default placement. The same
  configuration in the other placement, and the default variant where it differs, are named
  beside it. A claim is judged on the figure shown beside it.
- Latency is the p99 of what `watch` runs: the live options and the loader watch picks
  (`watch_options`), in the default placement, paced at the article's 20,000 moves/s.
- Attach is the first move seen by a new `tapbench watch --pid` process, as a user starts one.
"""
from __future__ import annotations

import json

import numpy as np
from bench.document import verdicts as judge
from bench.document.rows import Document, Row, noticed_by_opponent
from bench.document.sections.bpf_time import BpfProfile
from bench.document.sections.bystanders import Bystander
from bench.document.sections.ceiling import Ceiling
from bench.document.sections.dependence import Dependence
from bench.document.sections.privileges import Privilege
from bench.document.sections.skipped import Skipped
from bench.document.sections.startup import Attach
from bench.document.verdicts import NOT_COMPARABLE

# The article's table, in its order; the techniques added since follow, then the peers.
ARTICLE_ORDER = ["ptrace injection", "LD_PRELOAD hook", "eBPF tracepoint"]
PACED_RATE = 20_000  # the article's rate, at which latency is compared
ASPECTS = {"overhead_ns": "overhead", "ceiling_per_s": "ceiling", "intrusiveness": "intrusiveness",
           "privileges": "privileges", "kernel_dependence": "kernel dependence"}
# History: 1 first; 2 claims judged two-sided with the rule that refutes them, intrusiveness in
# two parts, verdicts on other machines and groups, ceilings as brackets of several searches.
HEADLINE_FORMAT = 2
OVERHEAD_INTERVAL = ("bootstrap 95 % interval of the median of the paired (observed − bare) per-move "
                     "times, one pair per repeat")
COST_INTERVAL = ("bootstrap 95 % interval of the median over the repeats of the whole CPU cost per event: "
                 "the target's extra loop CPU plus the observer's, each repeat against its own bare run")
SELECTION = {
    "row": "the article's variant of the technique where it names one, else its default variant; its first "
           "target, one writer, flat out, in the sweep's declared primary group for it, in its default "
           "placement; the other placement's row and the default variant beside it",
    "latency": f"p99 of what `watch` runs (live options and watch's loader) in the default placement, at "
               f"{PACED_RATE:,}/s; the range is that of the repeats' own p99s",
    "attach": "first move printed by a new `tapbench watch --pid` process, from its start (3 new processes)",
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


def is_default(entry, info: dict, variant: dict | None = None) -> bool:
    """Whether a row or a probe's entry is of the technique's default variant (with `variant`'s
    options instead where given)."""
    options = entry.options or {}
    defaults = info.get("default_options", {})
    return runs_variant(options, defaults | (variant or {}), defaults)


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


def article_variant(info: dict) -> dict:
    """The options of the variant the article names (its overhead claim's), or none."""
    return next((c["when"] for c in info.get("claims", []) if c["aspect"] == "overhead_ns" and c["when"]), {})


def live_row(document: Document, name: str) -> Row | None:
    """What `watch` runs, paced at the article's rate: the live options, the loader watch picks,
    and, in split, the spin before each sleep, in the technique's default placement."""
    info = document.info(name)
    placement = info.get("default_placement", "free")
    defaults = info.get("default_options", {})
    live = defaults | info.get("live_options", {}) | info.get("watch_options", {})
    if placement == "split" and info.get("live_spin_us"):
        live |= {"spin_us": info["live_spin_us"]}
    target = (info.get("targets") or ["go"])[0]
    return _one([r for r in document.runs if r.method == name and r.paced and r.rate == PACED_RATE
                 and r.placement == placement and r.target == target and r.goroutines == 1
                 and runs_variant(r.options, live, defaults)], f"{name} live at {PACED_RATE}/s")


def overhead_cell(row: Row, document: Document) -> dict:
    value, low, high = row.overhead_interval_ns
    slowdown_low, slowdown_high = row.overhead_ratio_ci
    return {"value": value, "interval": [low, high], "interval_of": OVERHEAD_INTERVAL,
            "slowdown": row.overhead_ratio, "slowdown_interval": [slowdown_low, slowdown_high],
            "placement": row.placement, "unstable": list(row.unstable), "label": document.label(row),
            "row": row.identity()}


def cost_cell(row: Row) -> dict | None:
    """What watching the row cost the machine per event, counted whole (None: not measured)."""
    if row.cpu_cost_ns_per_event is None:
        return None
    return {"value": row.cpu_cost_ns_per_event, "interval": list(row.cpu_cost_ci), "interval_of": COST_INTERVAL,
            "target_extra_ns": row.target_extra_cpu_ns_per_move, "observer_ns": row.observer_cpu_ns_per_move,
            "placement": row.placement}


def same_configuration(document: Document, row: Row) -> list[Row]:
    """The row's configuration measured in the document's other groups (same options, target,
    writers and placement, flat out): where a verdict can be checked against itself."""
    defaults = document.info(row.method).get("default_options", {})
    return [r for r in document.runs if r is not row and r.method == row.method and r.target == row.target
            and r.goroutines == row.goroutines and r.placement == row.placement and not r.paced
            and runs_variant(r.options, defaults | row.options, defaults)
            and runs_variant(row.options, defaults | r.options, defaults)]


def judged_overhead(claim: dict, row: Row, document: Document) -> dict:
    cell = overhead_cell(row, document)
    verdict, why = judge.unstable_verdict(*judge.judge_overhead(claim["value"], cell["interval"]), row.unstable)
    elsewhere = {r.group: judge.unstable_verdict(*judge.judge_overhead(claim["value"], list(r.overhead_interval_ns[1:])),
                                                 r.unstable)[0] for r in same_configuration(document, row)}
    disagreement = judge.agreement({row.group: verdict, **elsewhere}) if elsewhere else None
    return {"verdict": verdict, "why": why, "row": row.identity(), "label": cell["label"], "measured": cell,
            "in_other_groups": elsewhere, "groups_disagree": disagreement}


def ceiling_cell(document: Document, name: str) -> dict | None:
    info = document.info(name)
    entry = next((c for c in Ceiling.of(document) if c.method == name and c.placement == "shared"
                  and is_default(c, info)), None)
    if entry is None:
        return None
    searches = [s.to_json() for s in entry.searches] if entry.searches else [s.evidence() for s in entry.all_searches()]
    held, failed = judge.ceiling_bracket(searches)
    return {"held": held, "failed": failed, "searches": searches, "limited_by": entry.limited_by,
            "placement": "shared", "label": document.label(entry)}


def latency_cell(document: Document, name: str) -> dict | None:
    live = live_row(document, name)
    if live is None or live.latency_p99_ns is None:
        return None
    per_repeat = live.latency_p99_per_repeat_ns
    return {"value": live.latency_p99_ns, "repeats_range": [min(per_repeat), max(per_repeat)] if per_repeat else None,
            "row": live.identity(), "label": document.label(live), "latency_from": live.latency_from}


def attach_cell(document: Document, name: str) -> dict:
    """The first move of a new watch process attaching, as `watch --pid` runs the technique.
    Results before format 6 timed starts in one process, reusing compiled bytecode after the
    first: only their first (cold) start is taken."""
    info = document.info(name)
    entries = [a for a in Attach.of(document) if a.method == name]
    as_watch_runs = (info.get("watch_options") or {}) | (info.get("attach_options") or {})
    entry = next((a for a in entries if is_default(a, info, as_watch_runs)), None) or \
        next((a for a in entries if is_default(a, info, info.get("attach_options"))), None) or \
        next((a for a in entries if is_default(a, info)), None)
    cell = {"possible": bool(info.get("can_attach")), "why_not": info.get("attach_unavailable"), "first_move_ms": None}
    if entry is None or not entry.first_move_ms:
        return cell
    # Older results attached again and again in one process: only the first start had nothing
    # before it (later ones reused the process's imports, and a bcc backend its bytecode).
    starts = entry.first_move_ms if entry.in_new_processes() else entry.first_move_ms[:1]
    return cell | {"first_move_ms": float(np.median(starts)), "range_ms": [min(starts), max(starts)],
                   "starts": len(starts), "label": document.label(entry),
                   "in_new_process": entry.in_new_processes()}


def privilege_entries(document: Document, name: str) -> list[tuple[Privilege, dict]]:
    """Each probe of the technique, with what verdicts.py judges and headline.json quotes of it."""
    return [(p, p.evidence(f"{document.label(p)}, {p.mode}")) for p in Privilege.of(document) if p.method == name]


def judged_privileges(claim: dict, document: Document, name: str) -> dict:
    info = document.info(name)
    probes = privilege_entries(document, name)
    claimed = [found for p, found in probes if p.mode == "launch" and is_default(p, info, claim["when"])]
    others = [found for _, found in probes if not claimed or found is not claimed[0]]
    verdict, why = judge.judge_privileges(claim["text"], claimed[0] if claimed else None, others)
    # the figure beside the verdict is the probe it was judged on (the others are in its why)
    return {"verdict": verdict, "why": why, "measured": claimed[:1]}


def judged_intrusiveness(claim: dict, row: Row, document: Document, name: str) -> list[dict]:
    """'zero (target unmodified)': what the target can notice, and what it and its neighbours pay."""
    if not claim["text"].startswith("zero"):
        return [{"verdict": NOT_COMPARABLE, "why": "qualitative"}]
    noticed = noticed_by_opponent(row.self_checks)
    bystanders = {b.bystander if b.bystander is not None else "copy": judge.bystander_interval(b.evidence())
                  for b in Bystander.of(document)
                  if b.method == name and is_default(b, document.info(name), article_variant(document.info(name)))
                  and b.samples_alone}
    target = (row.overhead_ratio, *row.overhead_ratio_ci)
    unmodified, why_unmodified = judge.judge_unmodified(noticed)
    unslowed, why_unslowed = judge.judge_unslowed(target, bystanders)
    return [{"part": "unmodified", "verdict": unmodified, "why": why_unmodified, "row": row.identity(),
             "measured": noticed},
            {"part": "unslowed", "verdict": unslowed, "why": why_unslowed, "row": row.identity(),
             "measured": {"target": list(target), "bystanders": {k: list(v) for k, v in bystanders.items()}}}]


def judged_kernel(claim: dict, document: Document, name: str, kernels: dict | None) -> dict:
    measured = (kernels or {}).get("kernels") or [document.metadata.get("kernel", "?")]
    verdict, why = judge.judge_kernel_claim(claim["text"], ((kernels or {}).get("verdicts") or {}).get(name),
                                            measured)
    probe = next(iter(Dependence.of(document)), None)
    if probe and probe.measured and claim["when"].get("loader") == "core" \
            and len(measured) < judge.KERNELS_TO_JUDGE:
        core = probe.core
        why += "; here the CO-RE object " + ("ran exactly with the kernel headers and bcc hidden" if core.exact
                                             else f"failed without headers: {core.error}")
    return {"verdict": verdict, "why": why, "measured": {"kernels": measured}}


def judged_claims(document: Document, name: str, shown: Row, cells: dict, kernels: dict | None) -> list[dict]:
    info = document.info(name)
    claims = []
    for claim in info.get("claims", []):
        base = {"aspect": claim["aspect"], "text": claim["text"], "value": claim["value"], "row": None, "part": None}
        if claim["aspect"] == "overhead_ns":
            row = shown if runs_variant(shown.options, claim["when"], info.get("default_options", {})) \
                else chosen_rows(document, name, claim["when"], shown.placement)[0]
            claims.append(base | (judged_overhead(claim, row, document) if row is not None else
                                  {"verdict": NOT_COMPARABLE, "why": "its variant was not measured beside the row"}))
        elif claim["aspect"] == "ceiling_per_s":
            ceiling = cells["ceiling_per_s"]
            verdict, why = judge.judge_ceiling(claim["value"], ceiling["searches"] if ceiling else [])
            claims.append(base | {"verdict": verdict, "why": why, "measured": ceiling})
        elif claim["aspect"] == "intrusiveness":
            claims += [base | part for part in judged_intrusiveness(claim, shown, document, name)]
        elif claim["aspect"] == "privileges":
            claims.append(base | judged_privileges(claim, document, name))
        elif claim["aspect"] == "kernel_dependence":
            claims.append(base | judged_kernel(claim, document, name, kernels))
        else:
            claims.append(base | {"verdict": NOT_COMPARABLE, "why": "declared, not measured"})
    return claims


def technique(document: Document, name: str, kernels: dict | None = None) -> dict:
    """One technique's entry of headline.json: its rows, cells and judged claims."""
    info = document.info(name)
    entry = {"name": name, "article_name": info.get("article_name"),
             "reference_peer": bool(info.get("reference_peer")), "row": None, "other_row": None,
             "cells": {}, "claims": []}
    skipped = next((s.reason for s in Skipped.of(document) if s.method == name), None)
    variant = article_variant(info)
    row, other = chosen_rows(document, name, variant)
    if row is None:
        entry["missing"] = f"skipped: {skipped}" if skipped else (
            "not measured in this sweep" if other is None else f"measured in {other.placement} only")
        if other is None:
            return entry
    shown = row or other
    default_row = chosen_rows(document, name, None, shown.placement)[0] if variant else None
    entry |= {"label": document.label(shown), "row": shown.identity(),
              "other_row": other.identity() if row is not None and other is not None else None}
    cells = entry["cells"]
    cells["overhead_ns"] = overhead_cell(shown, document)
    cells["other_placement"] = overhead_cell(other, document) if row is not None and other is not None else None
    cells["default_variant"] = overhead_cell(default_row, document) if default_row is not None else None
    cells["cpu_cost_ns_per_event"] = cost_cell(shown)
    cells["ceiling_per_s"] = ceiling_cell(document, name)
    cells["latency_p99_ns"] = latency_cell(document, name)
    cells["noticed"] = noticed_by_opponent(shown.self_checks)
    cells["privileges"] = [found for _, found in privilege_entries(document, name)]
    cells["attach"] = attach_cell(document, name)
    cells["dependence"] = info.get("dependence") or None
    entry["claims"] = judged_claims(document, name, shown, cells, kernels)
    return entry


def across_machines(entries: list[dict], machines: dict[str, Document], current: str | None,
                    kernels: dict | None = None) -> None:
    """Each claim judged on every stored machine's latest sweep by the same rule: where they
    disagree, the claim says so and names what differs between the machines. The kernel
    matrix is no machine's: its verdicts go to every machine alike."""
    judged = {machine: {t["name"]: t for t in headline_json(document, kernels=kernels)["techniques"]}
              for machine, document in machines.items() if machine != current}
    for entry in entries:
        for claim in entry["claims"]:
            if claim["verdict"] == NOT_COMPARABLE:
                continue
            elsewhere = {}
            for machine, techniques in judged.items():
                same = next((c for c in (techniques.get(entry["name"]) or {}).get("claims", [])
                             if (c["aspect"], c.get("part"), c["text"]) == (claim["aspect"], claim.get("part"),
                                                                           claim["text"])), None)
                if same is not None:
                    elsewhere[machine] = same["verdict"]
            claim["machines"] = {current or "this machine": claim["verdict"], **elsewhere}
            claim["machines_disagree"] = judge.agreement(claim["machines"])
            if claim["machines_disagree"]:
                claim["machine_differences"] = {m: machine_note(d, claim) for m, d in machines.items()}


def machine_note(document: Document, claim: dict) -> str:
    """What differs between machines that matters to a claim: the CPU, and for a row of a BPF
    technique, the kernel's own time per run of its program in the same variant and placement."""
    meta = document.metadata
    note = f"{meta.get('cpu_model', '?')}, kernel {meta.get('kernel', '?')}"
    row = claim.get("row") or {}
    for profile in BpfProfile.of(document):
        for program in profile.programs:
            if (program.method, program.options, program.placement) == \
                    (row.get("method"), row.get("options"), row.get("placement")) and program.ns_per_run:
                note += f"; its BPF program {program.ns_per_run:.0f} ns a run"
    return note


def headline_json(document: Document, machines: dict[str, Document] | None = None,
                  kernels: dict | None = None) -> dict:
    """What the headline shows and why, for machines and for people who check: headline.json.
    machines: every stored machine's latest sweep, to judge each claim on each; kernels: the
    kernel matrix's verdicts ({"kernels": [...], "verdicts": {technique: {verdict, why}}})."""
    meta = document.metadata
    entries = [technique(document, name, kernels) for name in techniques_in_order(document)]
    if machines:
        across_machines(entries, machines, meta.get("machine_id"), kernels)
    return {"format": HEADLINE_FORMAT, "machine_id": meta.get("machine_id"), "date": meta.get("date"),
            "commit": meta.get("commit"), "rules": judge.RULES | SELECTION,
            "primary_groups": meta.get("primary_groups") or {}, "techniques": entries}


def write_headline_json(data: dict, path) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
