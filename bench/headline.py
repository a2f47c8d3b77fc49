"""The article's table, measured: one row per technique at the top of results/README.md, each
measured cell beside the article's claim with a verdict, and a few sentences written from the
numbers. Reads the results document only.

Which row stands for a technique: its default variant (the options it runs with unless told),
on the target it sees by default, one writer, flat out, in the placement where it measured
cheaper in this sweep (the other placement is in the Placement section).
"""
from __future__ import annotations

import numpy as np
from tabulate import tabulate

from bench.results import method_label

# The article's table, in its order; the techniques added since follow, then the peers.
ARTICLE_ORDER = ["ptrace injection", "LD_PRELOAD hook", "eBPF tracepoint"]
PACED_RATE = 20_000  # the article's rate, at which latency is compared
# "~X" holds when what was measured is at most this many times X (cheaper always holds).
ABOUT_FACTOR = 2.0
HOLDS, FAILS, NOT_COMPARABLE = "holds", "does not hold", "not comparable"


def attach_by_start(attach: dict | None) -> tuple[list[float], list[float]]:
    """An attach probe's first-move times, split into starts that compiled and that did not."""
    if not attach or "compiled_at_start" not in attach:
        return [], []
    pairs = list(zip(attach["first_move_ms"], attach["compiled_at_start"]))
    return [ms for ms, cold in pairs if cold is True], [ms for ms, cold in pairs if cold is False]


def first_move_text(attach: dict) -> str:
    """'first move 21 ms after', with the compiling start apart for a bcc backend."""
    cold, warm = attach_by_start(attach)
    if cold and warm:
        return f"first move {np.median(warm):.0f} ms after ({np.median(cold):.0f} ms when it compiles)"
    return f"first move {np.median(attach['first_move_ms']):.0f} ms after"


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if abs(ns) >= 1000 else f"{ns:.0f} ns"


def techniques(methods: dict) -> list[str]:
    """The article's three first, then the others, then the reference peers."""
    def order(name: str) -> tuple:
        info = methods[name]
        article = info.get("article_name")
        return (ARTICLE_ORDER.index(article) if article in ARTICLE_ORDER else len(ARTICLE_ORDER),
                bool(info.get("reference_peer")), name)
    return sorted((name for name, info in methods.items() if not info.get("baseline")), key=order)


def _runs_variant(row: dict, wanted: dict, defaults: dict) -> bool:
    """Whether a row ran with the wanted options (an option the row does not record, as in
    older results, had its default)."""
    options = row.get("options") or {}
    return all(options.get(name, defaults.get(name)) == value for name, value in wanted.items())


def _default(row: dict, info: dict) -> bool:
    defaults = info.get("default_options", {})
    return _runs_variant(row, defaults, defaults)


def representative_rows(document: dict, name: str) -> tuple[dict | None, dict | None]:
    """(the flat-out row standing for the technique, its paced row at the article's rate), both
    in the placement where it was cheaper flat out. The paced row is the technique's live
    variant (what watch uses: a consumer woken, not polled) where one was measured."""
    info = document["methods"][name]
    target = (info.get("targets") or ["go"])[0]
    defaults = info.get("default_options", {})

    def mine(row: dict, options: dict) -> bool:
        return (row["method"] == name and _runs_variant(row, options, defaults) and row["target"] == target
                and row["goroutines"] == 1 and not row.get("not_applicable"))

    flat = [r for r in document["runs"] if mine(r, defaults) and not r.get("paced")]
    if not flat:
        return None, None
    best = min(flat, key=lambda r: (r["overhead_ns"], -r["moves"]))
    live = defaults | info.get("live_options", {})
    # watch live in split also spins before each sleep (Observer.live_options_for)
    spinning = live | {"spin_us": info["live_spin_us"]} if info.get("live_spin_us") else None
    paced = []
    for options in (spinning if best.get("placement") == "split" else None, live, defaults):
        paced = [r for r in document["runs"]
                 if options and mine(r, options) and r.get("paced") and r["rate"] == PACED_RATE]
        if paced:
            break
    same_place = [r for r in paced if r.get("placement") == best.get("placement")]
    return best, (same_place or paced or [None])[0]


def judge_overhead(claim: dict, measured_ns: float) -> tuple[str, str]:
    factor = measured_ns / claim["value"]
    if factor <= ABOUT_FACTOR:
        return HOLDS, f"{factor:.1f}× the claim"
    return FAILS, f"{factor:.1f}× the claim"


def judge_ceiling(claim: dict, ceiling: dict | None) -> tuple[str, str]:
    if ceiling is None:
        return NOT_COMPARABLE, "not measured on one CPU"
    if ceiling["ceiling"] is None:
        return FAILS, "no rate held"
    verdict = HOLDS if ceiling["ceiling"] >= claim["value"] else FAILS
    return verdict, f"{ceiling['ceiling'] / claim['value']:.1f}× the claim"


def judge_privileges(minimums: list[str]) -> tuple[str, str]:
    enough = {"none", "CAP_BPF+CAP_PERFMON"}
    if not minimums:
        return NOT_COMPARABLE, "not measured"
    return (HOLDS, "measured") if all(m in enough for m in minimums) else (FAILS, "measured")


def judge_intrusiveness(claim: dict, noticed: str) -> tuple[str, str]:
    """Only a claim of *zero* can be checked against what the opponent noticed; the others are
    qualitative."""
    if claim["text"].startswith("zero"):
        return (HOLDS if noticed == "nothing" else FAILS), "the opponent's own self-check"
    return NOT_COMPARABLE, "qualitative"


def noticed_by_opponent(row: dict) -> str:
    seen = set()
    for check in row.get("self_checks") or []:
        if check.get("tracer_pid"):
            seen.add("TracerPid")
        if check.get("seccomp"):
            seen.add("a seccomp filter")
        if check.get("no_new_privs"):
            seen.add("no_new_privs")
        if check.get("ld_preload"):
            seen.add("LD_PRELOAD")
        if check.get("unexpected_libraries"):
            seen.add("an extra library")
    return ", ".join(sorted(seen)) or "nothing"


def _claims(info: dict, aspect: str, options: dict | None = None) -> list[dict]:
    return [c for c in info.get("claims", []) if c["aspect"] == aspect
            and (options is None or all(options.get(k) == v for k, v in c["when"].items()))]


def _cell(measured: str, claim: dict | None, verdict: tuple[str, str] | None) -> str:
    if claim is None:
        return measured
    return f"{measured}<br>claim: {claim['text']} → **{verdict[0]}** ({verdict[1]})"


def headline(document: dict) -> list[str]:
    methods = document.get("methods") or {}
    if not methods:
        return []
    rows, verdicts, facts = [], [], []
    skipped = {s["method"]: s["reason"] for s in document.get("skipped", [])}
    for name in techniques(methods) + sorted(set(skipped) - set(methods) - {"(all)"}):
        info = methods.get(name, {})
        flat, paced = representative_rows(document, name) if info else (None, None)
        if flat is None:
            why = f"skipped: {skipped[name]}" if name in skipped else "not measured in this sweep"
            rows.append([f"**{info.get('article_name') or name}**", why, *["-"] * 7])
            continue
        placement = flat.get("placement", "free")
        low, high = flat.get("overhead_ratio_ci") or [flat["overhead_ratio"]] * 2
        overhead = f"{_us(flat['overhead_ns'])} ({flat['overhead_ratio']:+.0%} [{low * 100:+.0f}, {high * 100:+.0f}]), {placement}"
        overhead_claim = next(iter(_claims(info, "overhead_ns", flat.get("options"))), None)
        claim_elsewhere = None
        if overhead_claim is None and _claims(info, "overhead_ns"):
            # The claim is about another variant (eBPF's ~80 ns is the sys_enter_write
            # tracepoint): judged against that variant's row in the same placement.
            claim_elsewhere = _claims(info, "overhead_ns")[0]
            variant = [r for r in document["runs"] if r["method"] == name and not r.get("paced")
                       and r.get("placement") == placement and r["target"] == flat["target"]
                       and r["goroutines"] == 1 and all((r.get("options") or {}).get(k) == v
                                                        for k, v in claim_elsewhere["when"].items())]
        if overhead_claim:
            verdict = judge_overhead(overhead_claim, flat["overhead_ns"])
            overhead = _cell(overhead, overhead_claim, (verdict[0], verdict[1] + ", absolute, this machine"))
            verdicts.append((name, "overhead " + overhead_claim["text"], verdict, _us(flat["overhead_ns"])))
        elif claim_elsewhere and variant:
            measured = variant[0]["overhead_ns"]
            verdict = judge_overhead(claim_elsewhere, measured)
            overhead += (f"<br>claim: {claim_elsewhere['text']} for {method_label(variant[0])}: measured "
                         f"{_us(measured)} → **{verdict[0]}** ({verdict[1]}, absolute, this machine)")
            verdicts.append((name, f"overhead {claim_elsewhere['text']} ({method_label(variant[0])})", verdict,
                             _us(measured)))
        ceiling = next((c for c in document.get("ceilings", []) if c["method"] == name
                        and c.get("placement") == "shared" and _default(c, info)), None)
        ceiling_text = "-" if ceiling is None else (
            "below 1,000/s" if ceiling["ceiling"] is None else f"{ceiling['ceiling']:,.0f}/s ({ceiling['limited_by']})")
        ceiling_claim = next(iter(_claims(info, "ceiling_per_s")), None)
        if ceiling_claim:
            verdict = judge_ceiling(ceiling_claim, ceiling)
            ceiling_text = _cell(ceiling_text, ceiling_claim, verdict)
            verdicts.append((name, "ceiling " + ceiling_claim["text"], verdict, ceiling_text.split("<br>")[0]))
        latency = "-" if paced is None or paced.get("latency_p99_ns") is None else \
            f"{_us(paced['latency_p99_ns'])} (`{method_label(paced)}`, {paced.get('placement', 'free')})" + (
                "" if paced.get("latency_from") == "target" else ", from the mechanism's own stamp")
        noticed = noticed_by_opponent(flat)
        intrusive_claim = next(iter(_claims(info, "intrusiveness")), None)
        if intrusive_claim:
            verdict = judge_intrusiveness(intrusive_claim, noticed)
            noticed = _cell(noticed, intrusive_claim, verdict)
            if verdict[0] != NOT_COMPARABLE:
                verdicts.append((name, "intrusiveness " + intrusive_claim["text"], verdict, noticed.split("<br>")[0]))
        minimums = [f"{p.get('mode', 'launch')}: {p['minimum'] or 'none of the sets tried'}"
                    for p in document.get("privileges", []) if p["method"] == name and _default(p, info)]
        privileges = "<br>".join(minimums) or "-"
        privilege_claim = next(iter(_claims(info, "privileges")), None)
        if privilege_claim:
            verdict = judge_privileges([m.split(": ", 1)[1] for m in minimums])
            privileges = _cell(privileges, privilege_claim, verdict)
            verdicts.append((name, "privileges " + privilege_claim["text"], verdict, "; ".join(minimums)))
        attach = next((a for a in document.get("attach", []) if a["method"] == name), None)
        if attach and attach["first_move_ms"]:
            attach_text = f"yes, {first_move_text(attach)}"
        else:
            attach_text = "yes" if info.get("can_attach") else f"no: {info.get('attach_unavailable')}"
        bystanders = [f"{b.get('bystander', 'a copy')}: {b['bystander_ratio']:.2f}×"
                      for b in document.get("bystanders", []) if b["method"] == name and _default(b, info)]
        dependence = f"*declared:* {info.get('dependence') or '-'}"
        dependence_claim = next(iter(_claims(info, "kernel_dependence")), None)
        if dependence_claim:
            dependence += f"<br>claim: {dependence_claim['text']} → {NOT_COMPARABLE} (declared, not measured)"
        label = f"**{info.get('article_name') or name}**<br>`{method_label(flat)}`" + (
            " (reference peer)" if info.get("reference_peer") else "")
        rows.append([label, overhead, ceiling_text, latency, noticed, privileges, attach_text,
                     "<br>".join(bystanders) or "-", dependence])
        facts.append((name, flat, paced, ceiling, noticed_by_opponent(flat), minimums))
    if not rows:
        return []
    table = tabulate(rows, headers=["technique (default variant)", "overhead per move (target slowdown [95 % CI]), "
                                    "better placement", "throughput ceiling, one CPU", f"latency p99 at {PACED_RATE:,}/s",
                                    "what the opponent noticed", "least privilege", "attach to a running process",
                                    "bystander cost", "kernel/runtime dependence"],
                     tablefmt="github", disable_numparse=True)
    return ["## The article's table, measured", "", table, "", *summary(facts, verdicts), "",
            f"*Verdicts*, one rule each (`bench/headline.py`): an overhead claim \"~X\" holds when the "
            f"median measured here is at most {ABOUT_FACTOR:g}× X, judged in absolute time on this "
            f"machine; a ceiling claim holds when the shared-placement (one CPU) ceiling reaches it; "
            f"\"zero\" intrusiveness holds when the opponent's own self-check noticed nothing; a "
            f"privilege claim holds when the measured minimum is no larger; kernel dependence is "
            f"declared by each backend and not comparable. The row of a technique is its default "
            f"variant, one writer, flat out, in the placement where it was cheaper."]


def summary(facts: list, verdicts: list) -> list[str]:
    """Three to five sentences written from the numbers."""
    if not facts:
        return []
    cheapest = min(facts, key=lambda f: f[1]["overhead_ns"])
    dearest = max(facts, key=lambda f: f[1]["overhead_ns"])
    sentences = [f"Cheapest per move on this machine: {cheapest[0]}, {_us(cheapest[1]['overhead_ns'])} "
                 f"({cheapest[1].get('placement', 'free')} placement)"
                 + (f"; the dearest, {dearest[0]}, costs {_us(dearest[1]['overhead_ns'])}, "
                    f"{dearest[1]['overhead_ns'] / max(cheapest[1]['overhead_ns'], 1):,.0f}× as much."
                    if dearest is not cheapest else ".")]
    unseen = [f[0] for f in facts if f[4] == "nothing"]
    if unseen:
        sentences.append(f"The opponent noticed nothing of {', '.join(unseen)}; it saw every other technique.")
    held = [v for v in verdicts if v[2][0] == HOLDS]
    failed = [v for v in verdicts if v[2][0] == FAILS]
    if held:
        sentences.append(f"Of the article's claims that can be measured, {len(held)} of {len(held) + len(failed)} "
                         f"hold here: " + "; ".join(f"{v[0]} {v[1]} ({v[3]})" for v in held) + ".")
    if failed:
        sentences.append("These do not: " + "; ".join(f"{v[0]} {v[1]}: {v[3]}, {v[2][1]}" for v in failed) + ".")
    return [" ".join(sentences)]
