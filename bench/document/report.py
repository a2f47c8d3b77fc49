"""Tables from a results document only, so they can be regenerated without re-running
anything: what a method is (its claims, whether it is the baseline ...) comes from the
document's `methods` section, never from the code that measured it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench.document import plots, programs
from bench.document.compare import compare_documents, definitions_differ, machines_differ, same_code, staleness
from bench.document.headline import attach_cell, headline_json, write_headline_json
from bench.document.headline_text import attach_text, headline
from bench.document.verdicts import bystander_interval, rate_text, refusal_text
from bench.document.plots import PLOTS
from bench.document.rows import Document, ResultsError, Row, noticed_by_opponent
from bench.stats import holm_adjusted, median_interval

# Run-to-run: below this target slowdown a row's CV says little (it divides by nearly zero).
NEAR_ZERO_SLOWDOWN = 0.10
# Two sweeps' repeats of a row are told apart below this p (two-sided Mann-Whitney), after
# Holm's correction for testing every row at once.
SWEEPS_APART_P = 0.05


def _us(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1000:.2f}"


def claims_of(document: Document, entry: Row | dict, aspect: str) -> list[dict]:
    """The article's claims about this variant of its method, on one aspect."""
    options = entry.options if isinstance(entry, Row) else entry.get("options") or {}
    method = entry.method if isinstance(entry, Row) else entry["method"]
    return [c for c in document.info(method).get("claims", [])
            if c["aspect"] == aspect and all(options.get(k) == v for k, v in c["when"].items())]


def claim_text(document: Document, entry: Row | dict, aspect: str) -> str:
    return "; ".join(c["text"] for c in claims_of(document, entry, aspect)) or "-"


def capture_cell(row: Row) -> str:
    if row.not_applicable:
        return f"n/a: {row.not_applicable}"
    if row.captured is None:
        return "-"
    verdict = "exact" if row.exact else "NOT EXACT"
    if row.capture == "count":
        return f"counted {row.captured}/{row.expected} {verdict} (floor)"
    return f"{row.captured}/{row.expected} {verdict}"


def overhead_cells(row: Row) -> list[str]:
    if row.paced:
        # Paced wall time is set by the schedule: what an observer costs shows as lag instead.
        return [f"paced {row.rate:g}/s: end lag {_us(row.lag_end_ns_max)}", "-"]
    median, low, high = row.overhead_interval_ns
    return [f"{_us(median)} [{_us(low)}, {_us(high)}]", ratio_cell(row)]


def ratio_cell(row: Row) -> str:
    """The target's slowdown as (observed − bare)/bare with its interval: '+99 % [+80, +120]'
    means the target took 1.99× as long. Flagged when the row is unstable."""
    text = f"{row.overhead_ratio:+.0%}"
    if row.overhead_ratio_ci:
        low, high = row.overhead_ratio_ci
        text += f" [{low * 100:+.0f}, {high * 100:+.0f}]"
    return text + (" ⚠ unstable" if row.unstable else "")


def cost_cell(row: Row) -> str:
    """What watching cost the machine per event, counted whole, with its interval; '-' where
    the row's format did not measure it."""
    if row.cpu_cost_ns_per_event is None:
        return "-"
    low, high = row.cpu_cost_ci
    return f"{_us(row.cpu_cost_ns_per_event)} [{_us(low)}, {_us(high)}]"


def floor_cell(row: Row) -> str:
    """The backend's overhead over its floor's (the same mechanism only counting), or why none."""
    if row.capture == "count":
        return "(the floor)"
    if row.over_floor_note:
        return "floor not above noise"
    if row.over_floor is None:
        return "-"
    low, high = row.over_floor_ci
    return f"{row.over_floor:.2f}× [{low:.2f}, {high:.2f}]"


def lost_cell(document: Document, row: Row) -> str:
    """Expected minus captured, then the mechanism's own count of its losses in brackets,
    n/a where it keeps none (a tracer cannot drop: the target waits for it)."""
    if row.lost is None or row.not_applicable:
        return "-"
    counted = row.lost_reported if document.info(row.method).get("loss_source") else "n/a"
    return f"{row.lost} ({counted})"


def runs_table(document: Document, fmt: str = "github", detail: bool = True) -> str:
    """Every run: capture and cost. detail adds what other sections of the README show on
    their own (claim, latency, start-up), for a terminal that has no other section."""
    headers = ["method", "group", "target", "G", "placement", "moves×runs", "captured/expected", "lost (own count)",
               "phantom", "in order", "bare µs/move", "observed µs/move", "overhead µs [95 % CI]",
               "target slowdown [95 % CI]", "CPU cost µs/event [95 % CI]", "overhead over floor [95 % CI]",
               "observer CPU µs/move"]
    if detail:
        headers += ["claimed", "latency p50/p99 µs", "ready ms"]
    rows = []
    for run in document.runs:
        row = [
            document.label(run), run.group, run.target, run.goroutines, run.placement,
            f"{run.moves}×{run.repeats}", capture_cell(run), lost_cell(document, run),
            "-" if run.phantom is None else run.phantom,
            "-" if run.in_order is None else ("yes" if run.in_order else "NO"),
            _us(run.ns_per_move_bare), _us(run.ns_per_move_observed),
            *overhead_cells(run), cost_cell(run), floor_cell(run), _us(run.observer_cpu_ns_per_move),
        ]
        if detail:
            row += [claim_text(document, run, "overhead_ns"),
                    f"{_us(run.latency_p50_ns)}/{_us(run.latency_p99_ns)}", f"{run.ready_ms:.0f}"]
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def users_sentence(document: Document) -> str:
    """Who the targets of the rows ran as (`run` and `watch` launch as the invoking user; the
    sweep's own opponent as tapbench's user)."""
    users = sorted({r.target_user for r in document.runs if r.target_user is not None})
    unknown = sum(r.target_user is None for r in document.runs)
    if not users:
        return "Who the targets ran as is not recorded (results older than format 4)." if unknown else ""
    return f"The targets ran as {', '.join(users)}" + (f"; for {unknown} rows it is not recorded." if unknown else ".")


def skipped_table(document: Document, fmt: str = "github") -> str:
    return tabulate([[document.label(s), s["reason"]] for s in document.skipped],
                    headers=["method", "skipped: reason"], tablefmt=fmt)


def markdown(document: Document, drawn: list[str] | None = None, headline_data: dict | None = None) -> str:
    """The results README; drawn: the image files drawn beside it (None: all of PLOTS);
    headline_data: its headline.json (None: judged on this document alone)."""
    meta = document.metadata
    lines = [
        "# tapbench results",
        "",
        f"Regenerated by `tapbench report` from the sweep of machine `{meta.get('machine_id', 'unknown')}` "
        "(`results/machines/<id>/latest.json`); do not edit by hand.",
        "",
        f"Measured {meta['date']} on kernel {meta['kernel']} ({meta['machine']}, "
        f"{meta['cpu_count']} × {meta['cpu_model']}, lockdown {meta['lockdown']}), "
        f"bcc {meta['bcc']}, {meta['go']}, Python {meta['python']}, commit {meta['commit']}"
        + (" — **DIRTY: measured with uncommitted changes, not reproducible from history**"
           if meta.get("dirty") or str(meta.get("commit", "")).endswith("-dirty") else "")
        + (f", converted from results format {meta['converted_from_format']}" if meta.get("converted_from_format")
           else "") + ". " + users_sentence(document) + " " + staleness(meta.get("commit"), "This sweep"),
        "",
        *headline(headline_data or headline_json(document)),
        "",
        "## Every run",
        "",
        "Every row of the sweep, in the order measured; *group* names the sweep group it ran in "
        "(its methods ran interleaved against the same bare runs) and is part of the row's identity. "
        "Every observed run is verified against the opponent's ground truth: *captured* counts "
        "distinct moves of the generator seen with the right kind; *lost* is expected minus "
        "captured, with the mechanism's own count of its losses in brackets (n/a: it keeps none); "
        "*phantom* counts events that are not a first sighting of a generator move. *Overhead* is "
        "the median of paired (observed − bare) per-move times from runs interleaved in the same "
        "invocation, with the bootstrap 95 % interval of that median (the interval every verdict uses; "
        "every bracket in this document is a 95 % interval unless it says otherwise). *Target slowdown* is the "
        "median over the repeats of (observed − bare) / bare, each repeat's two runs paired, with a "
        "bootstrap 95 % interval: +99 % means the target took 1.99× as long: what the watched program "
        "feels, over its own span from first to last write. *CPU cost* is what watching costs the "
        "machine per event, counted whole: the target's extra CPU over its move loop (observed − bare, "
        "as the kernel accounts it, so a BPF program or a hook running in the target's context is in "
        "it) plus the observer's CPU from release until the last event was handed over (work after "
        "the target's last write included) less the harness's own in the bare run; per repeat, the "
        "median with its bootstrap 95 % interval. Set-up and teardown are per run, not per event, and "
        "are shown apart in [Start-up](#start-up). *Observer CPU* is the observer's part of the cost. "
        "*Overhead over floor* "
        "divides a backend's overhead by its floor's, repeat by repeat (the median of those "
        "per-repeat ratios, with its interval): the floor is the same mechanism with `--capture count` "
        "(the same hook and filter, the same stop or interposed call, the writes only counted: nothing "
        "copied, stamped or sent), run beside it against the same bare runs; 1.5× means the backend "
        "costs half again what its mechanism must. A floor whose own slowdown interval includes zero "
        "is noise, and nothing is divided by it. ⚠ marks a row whose bare runs spread or split into "
        "two clusters, or whose interval is wide: read its median as a rough figure. Absolute times "
        "belong to this machine on this day; same-run ratios travel.",
        "",
        runs_table(document, detail=False),
    ]
    comparisons = document.section("comparisons")
    if comparisons:
        lines += ["", "## Same-run ratios", "",
                  "Per-move overhead of one method over another in the same group, the median of the "
                  "ratios taken repeat by repeat (both sides ran next to the same bare run), with its "
                  "bootstrap 95 % interval.", "",
                  tabulate([[c["method"], c["baseline"], c.get("group", ""), c.get("workload", ""), f"{c['ratio']:.2f}",
                             "-" if "ci" not in c else f"[{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]",
                             len(c["samples"])] for c in comparisons],
                           headers=["method", "over", "group", "workload", "ratio", "95 % CI", "repeats"],
                           tablefmt="github", disable_numparse=True)]
    bystanders = document.section("bystanders")
    if bystanders:
        lines += ["", "## Bystander cost", "",
                  "Time per write of an unwatched process (a second opponent, flat out) while the "
                  "method watches another opponent paced at 1000 moves/s, against the same process "
                  "beside the same paced opponent with no observer anywhere (so the paced "
                  "opponent's own share of the CPUs is not counted as the method's); interleaved, "
                  "the median of the per-repeat ratios (watching over alone). The article's 'zero "
                  "intrusion' for eBPF is about the watched process only.", "",
                  tabulate([[document.label(b) + ("" if b.get("control") == "paced opponent unobserved"
                                                  else " (control without the paced opponent)"),
                             f"{b.get('bystander', 'a copy of the opponent')} (`{b.get('bystander_target', 'go')}`)",
                             f"{b['bystander_ns_per_write_alone'] / 1000:.2f}",
                             f"{b['bystander_ns_per_write_watching'] / 1000:.2f}",
                             bystander_cell(b), b["repeats"]] for b in bystanders],
                           headers=["method watching someone else", "bystander", "bystander µs/write alone",
                                    "while watching", "ratio [95 % CI]", "repeats"],
                           tablefmt="github", disable_numparse=True)]
    lines += placement_section(document)
    lines += uprobe_section(document)
    lines += duel_section(document)
    lines += exec_section(document)
    lines += profile_section(document)
    lines += latency_section(document)
    lines += ceiling_section(document)
    lines += startup_section(document)
    lines += dependence_section(document)
    lines += intrusiveness_section(document)
    shown = [(name, title) for name, title in PLOTS if drawn is None or name in drawn]
    if shown:
        lines += ["", "## Plots", ""] + [f"![{title}]({name})" for name, title in shown]
    notes = [r for r in document.runs if r.not_applicable]
    if notes:
        lines += ["", "## Not applicable", ""] + [
            f"- {document.label(r)} on `{r.target}` [{r.group}]: {r.not_applicable}" for r in notes]
    if document.skipped:
        lines += ["", "## Skipped", "", skipped_table(document)]
    return "\n".join(lines) + "\n"


def bystander_cell(entry: dict) -> str:
    """'1.14× [1.11, 1.17]': watching over alone, the median of the per-repeat ratios, with the
    bootstrap 95 % interval of that median (results without samples: the median alone)."""
    if not entry.get("samples_alone"):
        return f"{entry['bystander_ratio']:.2f}×"
    median, low, high = bystander_interval(entry)
    return f"{1 + median:.2f}× [{1 + low:.2f}, {1 + high:.2f}]"


def _table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def duel_table(document: Document, fmt: str = "github") -> str:
    duels = document.section("duels")
    deadlines = sorted({d for duel in duels for d in duel["deadlines_us"]})
    rows = []
    for duel in duels:
        rates = dict(zip(duel["deadlines_us"], duel["win_rate"]))
        rows.append([document.label(duel), duel["target"], duel["placement"], f"{duel['moves']} at {duel['rate']:g}/s",
                     *(f"{rates[d]:.1%}" if d in rates else "-" for d in deadlines),
                     "-" if duel["delay_p50_ns"] is None else _us(duel["delay_p50_ns"]),
                     duel["unanswered"], duel["wrong"]])
    return tabulate(rows, headers=["spy watches through", "target", "placement", "moves",
                                   *(f"≤ {d:g} µs" for d in deadlines), "answer delay p50 µs",
                                   "unanswered", "wrong"], tablefmt=fmt, disable_numparse=True)


def exec_section(document: Document) -> list[str]:
    found = document.section("exec")
    if not found:
        return []
    rows = [[document.label(e), e["how"] or f"{'FAILED' if e.get('failed') else 'cannot'}: {e['error']}",
             e["written"] if e["written"] is not None else "-",
             e["seen"] if e["seen"] is not None else "-", e["missed"] if e["missed"] is not None else "-"]
            for e in found]
    return ["", "## Watching from the first move", "",
            "`tapbench watch --name rock-paper-scissors --wait 60` started before the opponent exists; "
            "the opponent then writes from its start, a move every 100 µs. A mechanism in place "
            "before the program starts catches it at exec (eBPF: a program on `sched_process_exec` "
            "hands the new PID to the write hook through a map); the others poll /proc and attach. "
            "What they missed, by the opponent's own count:", "",
            _table(rows, ["method", "how it found the opponent", "moves written", "seen", "missed"])]


def profile_section(document: Document) -> list[str]:
    """The kernel's timing of each BPF program, beside the overhead per move the sweep measured
    for the same variant, target and placement in the technique's own group: what the program
    accounts for, and what not."""
    profiles = document.section("bpf_profile")
    if not profiles:
        return []
    primary = document.metadata.get("primary_groups") or {}

    def measured_overhead(program: dict) -> float | None:
        same = [r for r in document.runs if r.method == program["method"] and r.options == program["options"]
                and r.target == program["target"] and r.goroutines == 1 and not r.rate
                and r.placement == program["placement"] and r.group == primary.get(r.method)]
        return same[0].overhead_ns if len(same) == 1 else None

    rows = []
    for profile in profiles:
        variants: dict[str, list[dict]] = {}
        for row in profile["programs"]:
            variants.setdefault(document.label(row), []).append(row)
        for label, programs in variants.items():
            overhead = measured_overhead(programs[0])
            in_programs = sum(p["ns_per_move"] for p in programs)
            for index, row in enumerate(programs):
                first = index == 0  # the variant's overhead once, beside all its programs' time
                rows.append([label, row["placement"], row["program"], f"{row['runs_per_move']:.3f}",
                             "-" if row["ns_per_run"] is None else f"{row['ns_per_run']:.0f}",
                             f"{row['ns_per_move']:.0f}",
                             f"{overhead:.0f}" if first and overhead is not None else "-",
                             f"{overhead - in_programs:.0f}" if first and overhead is not None else "-"])
    empty = ", ".join(f"{p['empty_program_ns']:.0f} ns ({p['placement']})" for p in profiles)
    return ["", "## Where the BPF time goes", "",
            "Each BPF variant run once more (flat out, `go`) with the kernel timing every run of its "
            "programs (BPF run-time statistics, `kernel.bpf_stats_enabled`; on only for these runs: "
            f"the timing costs two clock reads a run). An empty program measured {empty} a run under "
            "it; that is subtracted. *Program ns/move* is the program's whole time over the moves; "
            "*overhead* is the same variant's median overhead per move in its technique's primary group "
            "(the headline's), same target and placement; "
            "*outside the programs* is the difference: entering the hook (a syscall tracepoint "
            "sends every system call through the slow path), the consumer's share of the CPU, "
            "caches. The `exec` variant finds its target through a map that `sched_process_exec` "
            "fills (what `watch --name --wait` uses): its extra ns per run over `raw, poll` is the "
            "lookup's cost.", "",
            _table(rows, ["variant", "placement", "program", "runs/move", "ns/run", "program ns/move",
                          "overhead ns/move", "outside the programs"])]


# Published per-call costs of a kernel uprobe, for scale (the sources are in DESIGN.md):
# Cloudflare's ebpf_exporter measured ~1.7 µs on a cgo target, bpftime ~2.5 µs.
PUBLISHED_UPROBE_NS = (1_700, 5_000)


def uprobe_section(document: Document) -> list[str]:
    """tapbench's uprobe, only counting, against an independent uprobe (bpftrace's, only
    counting) in the same run: whether the cost per call is the technique's or the machine's."""
    lines = []
    for placement in ("shared", "split"):
        rows = [r for r in document.runs if r.group == "uprobe" and r.placement == placement and r.capture == "count"]
        ours = next((r for r in rows if r.method == "uprobe"), None)
        peer = next((r for r in rows if r.method == "bpftrace"), None)
        if ours is None or peer is None:
            continue
        ratio, low, high = median_interval(np.divide(
            np.subtract(peer.samples_observed_ns_per_move, peer.samples_bare_ns_per_move),
            np.subtract(ours.samples_observed_ns_per_move, ours.samples_bare_ns_per_move)))
        agree = low <= 1 <= high
        (value, ours_low, ours_high), (peer_value, peer_low, peer_high) = ours.overhead_interval_ns, peer.overhead_interval_ns
        lines.append(
            f"- {placement}: `{document.label(ours)}` {_us(value)} [{_us(ours_low)}, {_us(ours_high)}] µs a call, "
            f"`{document.label(peer)}` {_us(peer_value)} [{_us(peer_low)}, {_us(peer_high)}] µs; the peer over "
            f"tapbench's, repeat by repeat: {ratio:.2f} [{low:.2f}, {high:.2f}]: "
            + ("**they agree**: the cost is the kernel's uprobe path on this machine, not tapbench's program or "
               "consumer" if agree else "**they differ**: " + ("tapbench's uprobe costs more than an independent "
                                                               "one here" if high < 1 else
                                                               "the independent uprobe costs more here")) + ".")
    if not lines:
        return []
    low, high = PUBLISHED_UPROBE_NS
    return ["", "## The uprobe's cost", "",
            "The uprobe traps into the kernel at every call of Go's `syscall.write`. To tell whether its cost per "
            "call is tapbench's or the machine's, the same run measures tapbench's uprobe only counting (its "
            "floor) beside an independent implementation: bpftrace's own uprobe on the same symbol, only "
            "counting (at the function's entry: Debian's bpftrace cannot place it past the stack check as "
            "tapbench does, so a write that grows its stack is counted twice, and its row is not exact by one or "
            f"two). Published figures for a kernel uprobe are {_us(low)}–{_us(high)} µs a call.", "", *lines]


def duel_section(document: Document) -> list[str]:
    if not document.section("duels"):
        return []
    return ["", "## The duel", "",
            "A referee launches the opponent, which stamps every move just before writing it. A spy "
            "watches it through each technique (its live settings: consumers woken, not polled) and "
            "answers every move it sees with the move that beats it. The referee counts a win when "
            "the right answer came within the deadline of the opponent's own stamp; the share of "
            "moves won, per deadline (`tapbench duel`):", "", duel_table(document)]


def placement_section(document: Document) -> list[str]:
    """Each flat-out row measured in both placements in one group, side by side, and whether
    the method's default placement (what run and watch use) is the one measured cheaper here."""
    by_row: dict[tuple, dict[str, Row]] = {}
    for r in document.runs:
        if r.paced or document.is_baseline(r) or r.not_applicable:
            continue
        key = (r.group, r.method, tuple(sorted(r.options.items())), r.target, r.goroutines, r.moves)
        by_row.setdefault(key, {})[r.placement] = r
    rows = []
    for placed in by_row.values():
        if not {"shared", "split"} <= set(placed):
            continue
        shared, split = placed["shared"], placed["split"]
        (_, shared_low, shared_high), (_, split_low, split_high) = shared.overhead_interval_ns, split.overhead_interval_ns
        # Cheaper means what the machine pays, counted whole, where the rows measured it: a
        # slowdown over the target's span leaves out what the observer does after it.
        by_cost = shared.cpu_cost_ci is not None and split.cpu_cost_ci is not None
        (a_low, a_high), (b_low, b_high) = (shared.cpu_cost_ci, split.cpu_cost_ci) if by_cost else \
            ((shared_low, shared_high), (split_low, split_high))
        if a_high < b_low:
            cheaper = "shared"
        elif b_high < a_low:
            cheaper = "split"
        else:
            cheaper = "not told apart"
        cheaper += "" if by_cost else " (by slowdown)"
        default = document.info(shared.method).get("default_placement", "-")
        verdict = default if cheaper.split(" (")[0] in (default, "not told apart") else \
            f"{default} (**not** the cheaper one here)"
        rows.append([document.label(shared), shared.group, shared.target, shared.goroutines, shared.moves,
                     f"{_us(shared.overhead_ns)} [{_us(shared_low)}, {_us(shared_high)}]",
                     f"{_us(split.overhead_ns)} [{_us(split_low)}, {_us(split_high)}]",
                     cost_cell(shared), cost_cell(split),
                     f"{max(shared.overhead_ns, split.overhead_ns) / max(min(shared.overhead_ns, split.overhead_ns), 1):.1f}×",
                     cheaper, verdict])
    if not rows:
        return []
    return ["", "## Placement", "",
            "Every flat-out row of a group measured in both placements: overhead per move with the target "
            "and the observer on one CPU (*shared*, the article's 'one core') and with the observer on the "
            "other CPUs (*split*), each against bare runs in the same placement, with the bootstrap 95 % "
            "interval of its median, then the CPU cost per event counted whole in each. *Factor* is the "
            "ratio of the two overhead medians (the two placements ran in different runs, so there are no "
            "per-repeat pairs to take it from). *Cheaper here* compares the costs, and says so only when "
            "their intervals do not overlap (rows of older results, which measured no cost, compare the "
            "overheads, and say so). In shared placement the target waits for the observer's CPU, so its "
            "slowdown holds most of the cost; in split the observer's work runs beside it and the slowdown "
            "leaves it out; and a short run's slowdown in shared placement understates a long run's, "
            "because the observer's work after the target's last write is outside the target's span, "
            "while the cost counts it. A mechanism that stops the target and wakes it pays for waking "
            "it on another vCPU; a consumer that runs beside the target takes its CPU when they "
            "share one. *Default* is the placement `run` and `watch` use for the method.", "",
            _table(rows, ["method", "group", "target", "G", "moves", "shared overhead µs/move [95 % CI]",
                          "split overhead µs/move [95 % CI]", "shared cost µs/event", "split cost µs/event",
                          "factor", "cheaper here", "default"])]


def latency_section(document: Document) -> list[str]:
    rows = [r for r in document.runs if not document.is_baseline(r) and r.latency_p50_ns is not None]
    if not rows:
        return []
    floors = document.section("latency_floor")
    batch_us = [r.batch_ns_max or 0 for r in rows]
    floor_lines = [] if not floors else [
        "", "The floor, with no interception at all: the same opponent at the same rate, its stdout a "
        "pipe that Python reads blocking (the kernel wakes the reader at each write), every move "
        "stamped and measured the same way: what this machine's wake-up and Python cost a woken "
        "consumer. Its p99 is given over several runs, with their range; a technique's p99 is only "
        "below it in earnest when it lies below that whole range (its consumer may spin, or take "
        "a batch of moves at one wake-up).", "",
        _table([[f["placement"], f"{f['rate']:g}/s", f["stamped"], f.get("repeats", 1),
                 *(_us(f.get(k)) for k in ("latency_p50_ns", "latency_p90_ns", "latency_p99_ns")),
                 "-" if not f.get("latency_p99_per_repeat_ns") else
                 f"{_us(min(f['latency_p99_per_repeat_ns']))}–{_us(max(f['latency_p99_per_repeat_ns']))}",
                 *(_us(f.get(k)) for k in ("latency_p999_ns", "latency_max_ns"))] for f in floors],
               ["pipe reader, placement", "rate", "stamped moves (first run)", "runs", "p50 µs", "p90 µs",
                "p99 µs", "p99 of each run, µs", "p99.9 µs", "max µs"])]
    return ["", "## Observation latency", "",
            "Every row that received moves, paced and flat out. From the opponent's own CLOCK_MONOTONIC "
            "stamp, taken through the vDSO immediately "
            "before its write(), to the moment Python received the move: one definition for every "
            "method (*latency from: target*), over the stamped moves of every repeat (every 64th "
            "of each writer flat out, every move at 20,000/s). The headline's latency is the row of "
            "what `watch` runs (the live options in the default placement). The last two columns are a "
            "breakdown: from the mechanism's own stamp of the write (BPF, the hook, the tracer's stop, strace's print) to Python. The ring "
            "readers stamp a batch's arrival once, so a move's latency is exact to within the "
            f"time its batch took to hand over (at most {max(batch_us) / 1000:.0f} µs in these rows).", "",
            _table([[document.label(r), r.group, r.target, r.goroutines, r.placement, f"{r.moves}×{r.repeats}",
                     f"{r.rate:g}/s" if r.paced else "flat out", r.latency_from,
                     *(_us(getattr(r, k)) for k in ("latency_p50_ns", "latency_p90_ns", "latency_p99_ns",
                                                    "latency_p999_ns", "latency_max_ns",
                                                    "mechanism_latency_p50_ns", "mechanism_latency_p99_ns"))]
                    for r in rows],
                   ["method", "group", "target", "G", "placement", "moves×runs", "rate", "latency from", "p50 µs",
                    "p90 µs", "p99 µs", "p99.9 µs", "max µs", "mechanism→Python p50 µs", "p99 µs"]), *floor_lines]


def ceiling_section(document: Document) -> list[str]:
    ceilings = document.section("ceilings")
    if not ceilings:
        return []
    rows = []
    for c in ceilings:
        limit = "-" if c["first_failure"] is None else f"{c['first_failure']:,.0f}"
        placement = c.get("placement", "free")
        searches = c.get("searches") or [c]
        rows.append([document.label(c), c["target"], placement,
                     "; ".join(f"{rate_text(f['ceiling'])}–{rate_text(f['first_failure'])}" for f in searches),
                     "below 1,000" if c["ceiling"] is None else f"{c['ceiling']:,.0f}",
                     f"{c['ceiling'] / c['unobserved_max']:.0%}" if c["ceiling"] else "-",
                     limit, c["limited_by"], c.get("limit", "not said (older results)"),
                     f"{c['unobserved_max']:,.0f}", len(c["probes"]),
                     # the article's "on one core" is the shared placement
                     claim_text(document, c, "ceiling_per_s") if placement == "shared" else "-"])
    confirmations = max((c.get("confirmations", 1) for c in ceilings), default=1)
    return ["", "## Throughput ceiling", "",
            "The highest paced rate (moves/s) at which every move was captured, in order, with no "
            "phantom, and the target still wrote at ≥ 95 % of the offered rate. Found by a ×4 ramp "
            "from 1,000/s up to 90 % of the target's unobserved flat-out rate (the median of its "
            "flat-out runs), then 4 bisection steps (±9 %) in which a rate holds only if "
            f"{confirmations} probes in a row hold. The ceiling lies between it and the first "
            "failure; the whole search is made more than once, and *held–failed* gives each search's bracket "
            "(rates to two significant figures: the ladder knows no better). *loss*: the method missed moves; *disorder*: moves arrived out of order; "
            "*throttled*: the target could not keep the schedule while watched (at the first "
            "failing rate the target also runs alone as a control, and the cell says when it was "
            "throttled too); *backlog*: the consumer was still receiving events more than 0.1 s "
            "after the target's last write (it buffered what it could not keep up with). *What limits it*: "
            "the target's own rate (nothing failed below 90 % of its flat-out rate, or the target alone "
            "failed too); the consumer (events not taken in time, or, on one CPU, the observer took a "
            "quarter or more of it at the failing rate); or the mechanism (a tracer's stop at every write, "
            "a program in the target's system call: the target itself slowed).", "",
            _table(rows, ["method", "target", "placement", "held–failed, each search", "first search: held moves/s",
                          "of the target's own rate",
                          "first failure at", "limited by", "what limits it", "target alone, flat out", "probes",
                          "claimed"])]


def attach_by_start(attach: dict | None) -> tuple[list[float], list[float]]:
    """An attach probe's first-move times, split into starts that compiled and that did not
    (results before format 6 attached in one process); a new process each: all cold."""
    if not attach:
        return [], []
    if "start" in attach:
        return attach["first_move_ms"], []
    pairs = list(zip(attach["first_move_ms"], attach.get("compiled_at_start") or []))
    return [ms for ms, cold in pairs if cold is not False], [ms for ms, cold in pairs if cold is False]


def startup_section(document: Document) -> list[str]:
    launch, compiled, reused, setup, teardown = {}, {}, {}, {}, {}
    for r in document.runs:
        if not document.is_baseline(r) and not r.not_applicable:
            label = document.label(r)
            launch.setdefault(label, []).append(r.ready_ms)
            compiled.setdefault(label, []).extend(r.ready_ms_compiled)
            reused.setdefault(label, []).extend(r.ready_ms_reused)
            if r.observer_setup_cpu_ms is not None:
                setup.setdefault(label, []).append(r.observer_setup_cpu_ms)
                teardown.setdefault(label, []).append(r.observer_teardown_cpu_ms)
    lines = ["", "## Start-up", "",
             "*launch*: from starting the opponent (held at a gate) to the mechanism being in place "
             "(BPF compile and load, tracer attached, preload ring mapped), median over every row of the "
             "variant. *attach, first move*: one definition, the headline's: a new `tapbench watch --pid` "
             "process started against an opponent already writing 10,000 moves/s, from its start until it "
             "says it watches and until it prints the first move (median of the new processes, with their "
             "range; Python's own start included, as a user meets it). *Set-up CPU* and *teardown CPU*: "
             "what the observer's process tree used from launch to release and in close(), per run (median "
             "over the rows): per run, not per event, so kept out of the CPU cost per event.", "",
             "The bcc backends (ebpf, uprobe) compile their C at the first start in a process and load the "
             "same bytecode, with fresh maps and the target's PID written in, at every later one "
             "(`methods/bpf_loader.py`); the sweep is one process. Their launches are shown apart: "
             "*compiling* (clang runs) and *reusing* (it does not), with how many of each: a start that "
             "reuses bytecode is never called an attach time. bpftrace compiles at every start.", ""]
    attach_by_label = {document.label(a): a for a in document.section("attach")}
    rows = []
    for label in sorted(set(launch) | set(attach_by_label)):
        attach = attach_by_label.get(label)
        cold, _ = attach_by_start(attach)
        rows.append([label, f"{np.median(launch[label]):.0f}" if label in launch else "-",
                     _starts_cell(compiled.get(label, [])), _starts_cell(reused.get(label, [])),
                     _median_ms(setup.get(label, [])), _median_ms(teardown.get(label, [])),
                     _range_cell(attach["attach_ms"]) if attach and "start" in attach else "-",
                     _range_cell(cold) if attach else "-"])
    loads = [p["empty_program_load_ms"] for p in document.section("bpf_profile")
             if p.get("empty_program_load_ms") is not None]
    bcc_floor = [] if not loads else [
        "", f"bcc compiles every program with clang: one that does nothing took {np.median(loads):.0f} ms "
        "to compile and load here (median of its own runs, apart from those above: the two differ by the "
        "machine's noise). That is the floor under a bcc backend's start-up when it compiles."]
    return lines + [_table(rows, ["method", "launch: ready ms", "launch, compiling: ms (starts)",
                                  "launch, reusing: ms (starts)", "set-up CPU ms", "teardown CPU ms",
                                  "attach, new process: watching ms", "attach, new process: first move ms"])] \
        + bcc_floor


def _range_cell(values: list[float]) -> str:
    """'180 (160–210)': the median of the starts and their range."""
    return "-" if not values else f"{np.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def dependence_section(document: Document) -> list[str]:
    """What the eBPF loaders need where they run, measured; and a first start in a new process."""
    probes, starts = document.section("dependence"), document.section("cold_starts")
    if not probes and not starts:
        return []
    lines = ["", "## Kernel dependence", ""]
    for probe in probes:
        if not probe.get("measured"):
            lines.append(f"Not measured: {probe.get('why')}.")
            continue
        lines.append(
            f"`tapbench run --method ebpf --loader core` and `--loader bcc`, each in a new process, in a mount "
            f"namespace where {', '.join(f'`{h}`' for h in probe['hidden'][:-1])} are covered by empty "
            f"folders (the kernel headers bcc compiles against), {PROBE_MOVES_TEXT}; for the CO-RE run "
            f"{probe['hidden'][-1]} is not importable either (so neither it nor its clang can be used). The CO-RE object "
            + ("captured exactly: it needs this kernel's BTF, no headers and no compiler" if probe["core"]["exact"]
               else f"did not run: {probe['core']['error']}") + "; bcc "
            + ("captured exactly (it should not have)" if probe["bcc"]["exact"] else f"said: {probe['bcc']['error']}")
            + ".")
    if starts:
        lines += ["", "A first start in a new process (`tapbench run`, nothing compiled before in it): from launch "
                  "to the mechanism in place (bcc compiles, libbpf relocates and loads, bpftrace compiles its "
                  "script), median of the starts.", "",
                  _table([[document.label(c), "-" if c["median_ms"] is None else f"{c['median_ms']:.0f}",
                           ", ".join(f"{ms:.0f}" for ms in c["ready_ms"]) or "-",
                           "; ".join(c["errors"]) or "-"] for c in starts],
                         ["method", "ready ms, median", "each start, ms", "errors"])]
    return lines


PROBE_MOVES_TEXT = "2,000 moves of the opponent"


def _starts_cell(values: list[float]) -> str:
    """'-' where the method has no such start, else the median and how many starts."""
    return "-" if not values else f"{np.median(values):.0f} ({len(values)})"


def _median_ms(values: list[float]) -> str:
    return "-" if not values else f"{np.median(values):.1f}"


def intrusiveness_section(document: Document) -> list[str]:
    """One row per method: what the opponent noticed, attach, privileges, SIGKILL, bystander,
    and what it declares it depends on."""
    checks: dict[str, list[dict]] = {}
    claimed: dict[str, str] = {}
    for r in document.runs:
        if document.is_baseline(r) or r.not_applicable or not r.self_checks:
            continue
        checks.setdefault(r.method, []).extend(r.self_checks)  # what any repeat of any row noticed
        claimed[r.method] = "; ".join(c["text"] for aspect in ("intrusiveness", "privileges", "kernel_dependence")
                                      for c in claims_of(document, r, aspect)) or "-"
    if not checks:
        return []
    privileges = {}
    for p in document.section("privileges"):
        as_user = p.get("as_user")
        user = "" if not as_user else (
            f" (as uid {as_user['uid']} with them: works)" if as_user["worked"] else
            f" (as uid {as_user['uid']} with them: fails: "
            f"{refusal_text(as_user['refused']) if as_user.get('refused') else as_user['error']})")
        privileges.setdefault(p["method"], []).append(
            f"{document.label(p)}, {p.get('mode', 'launch')}: {p['minimum'] or 'none of the sets tried'}{user}")
    attach = {a["method"]: a for a in document.section("attach")}
    sigkill = {}
    for k in document.section("sigkill"):
        outcome = k.get("fate") or k.get("error")
        left = list(k.get("left_behind") or [])
        if k.get("tracer_pid_after"):
            left.append(f"TracerPid {k['tracer_pid_after']}")
        sigkill.setdefault(k["method"], []).append(
            f"{document.label(k)} ({k['mode']}): {outcome}" + (f"; {', '.join(left)}" if left else "; nothing left"))
    hostile = {}
    for h in document.section("hostile"):
        hostile.setdefault(h["method"], []).append("; ".join(hostile_text(a) for a in h["attacks"]))
    bystander = {}
    for b in document.section("bystanders"):
        bystander.setdefault(b["method"], []).append(
            f"{document.label(b)}, {b.get('bystander', 'a copy of the opponent')}: {bystander_cell(b)}")
    rows = []
    for method, seen in checks.items():
        info = document.info(method)
        if method in attach and attach[method]["first_move_ms"]:
            can_attach = attach_text(attach_cell(document, method))
        elif not info:
            can_attach = "-"
        elif info["can_attach"]:
            can_attach = "yes (not measured here)"
        else:
            can_attach = f"no: {info['attach_unavailable']}"
        rows.append([method, ", ".join(noticed_by_opponent(seen)) or "nothing", can_attach,
                     "<br>".join(privileges.get(method, ["-"])), "<br>".join(sigkill.get(method, ["-"])),
                     "<br>".join(hostile.get(method, ["not measured"])),
                     "<br>".join(bystander.get(method, ["-"])), info.get("dependence") or "-", claimed[method]])
    return ["", "## Intrusiveness matrix", "",
            "Measured, not asserted, except the dependence column, which each backend declares. *Noticed "
            "by the opponent*: its own self-check at start in every repeat of every row of the method "
            "(/proc/self/status TracerPid, Seccomp and NoNewPrivs, the LD_PRELOAD variable, libraries "
            "mapped that a plain run does not map); the headline applies the same test to its row only. "
            "*Least privilege*: the smallest capability bounding set, tried in "
            "order with `setpriv` (root uid kept), under which a launched run still captured "
            "exactly (*launch*) or a watch attached to an opponent root had started saw its moves "
            "(*attach*); then the same set as an unprivileged user. *SIGKILL*: tapbench killed while watching; "
            "the opponent's state a second later and what was left on the machine. *Hostile target*: a "
            "program (`bench/hostile_target.c`) that looks in its own memory for anything of the observer's "
            "and attacks it, shrinking it (*truncate*) or overwriting it with impossible values (*scribble*), "
            "under `tapbench watch`: what it found, and how the observer came out. *Bystander*: an "
            "unwatched process's time per write while the method watches someone else, over the same "
            "with no observer (median of per-repeat ratios).", "",
            _table(rows, ["method", "noticed by the opponent", "attach to a running process",
                          "least privilege", "SIGKILL of tapbench", "what a hostile target can do to it",
                          "bystander cost",
                          "kernel/runtime dependence (declared)", "claimed"])]


def hostile_text(attack: dict) -> str:
    """'scribble: found the ring; the observer said: the target damaged ...; exit 1'."""
    if not attack["survived"]:
        outcome = f"the observer DIED (exit {attack['observer_exit']})"
    else:
        outcome = f"observer exit {attack['observer_exit']}" + (
            f", said: {attack['observer_said']}" if attack["observer_said"] else ", nothing to report")
    flaws = (["printed an impossible figure"] if attack["impossible_figure"] else []) + (
        [f"left {', '.join(attack['left_behind'])}"] if attack["left_behind"] else [])
    return f"{attack['attack']}: found {attack['target_found']}; {outcome}" + (
        f"; **{'; '.join(flaws)}**" if flaws else "")


def sweeps_section(document: Document, previous: Document | None, quick: Document | None) -> str:
    """Wall times of the sweeps, and the spread of each slowdown between this sweep and the
    one before it (same rows, same machine), with Holm's correction over the rows tested."""
    from scipy.stats import mannwhitneyu  # a second to import: only when comparing

    meta = document.metadata
    lines = ["", "## Sweeps", ""]
    if meta.get("wall_s") is not None:
        extended = sorted({r.repeats for r in document.runs if r.repeats > meta.get("repeats", r.repeats)})
        more = f", up to {extended[-1]} where the spread asked for more" if extended else ""
        lines.append(f"- this sweep (`make bench`, {meta.get('repeats', '?')} repeats{more}): {meta['wall_s']:.0f} s")
        if meta.get("phase_s"):
            lines.append("  - where the time went: " + ", ".join(
                f"{kind} {seconds:.0f} s" for kind, seconds in sorted(meta["phase_s"].items(), key=lambda k: -k[1])))
    if quick and quick.metadata.get("wall_s") is not None:
        lines.append(f"- quick sweep (`tapbench sweep --quick`, this machine's `baseline.json`, "
                     f"{quick.metadata['date']}): {quick.metadata['wall_s']:.0f} s")
    if previous and not machines_differ(previous, document) and definitions_differ(previous, document):
        lines += ["", f"Run-to-run spread: not shown: {definitions_differ(previous, document)}."]
    elif previous and not machines_differ(previous, document):
        changes, _ = compare_documents(previous, document)
        # Paced rows have no slowdown to compare; a not-applicable row's is noise around zero.
        not_applicable = {r.key for r in document.runs if r.not_applicable}
        changes = [c for c in changes if not c.note and not c.missing and c.key not in not_applicable]
        if changes:
            # A CV divides by the mean slowdown: for a floor's few per cent it says little.
            near_zero = [abs(c.old_ratio + c.new_ratio) / 2 < NEAR_ZERO_SLOWDOWN for c in changes]
            cvs = [c.cv for c, small in zip(changes, near_zero) if not small]
            old_commit, new_commit = previous.metadata.get("commit"), meta.get("commit")
            if old_commit == new_commit:
                code = "same commit"
            elif same_code(old_commit, new_commit):
                code = (f"commits {str(old_commit)[:12]} then {str(new_commit)[:12]}, which differ only in "
                        "results/: the same code")
            else:
                code = (f"**different commits** ({str(old_commit)[:12]} then {str(new_commit)[:12]}): "
                        "the spread includes what the code changed")
            spread = (f"median {np.median(cvs):.1%}, {sum(cv <= 0.05 for cv in cvs)} of {len(cvs)} rows "
                      f"at most 5 %" if cvs else "no row slows the target by 10 % or more")
            # Whether the two sweeps' per-repeat slowdowns tell apart at all, every row tested at
            # once: Holm's correction keeps the chance of any row told apart by chance below 5 %.
            old_rows, new_rows = previous.keyed_rows(), document.keyed_rows()
            p_values = [_two_sided_p(mannwhitneyu, old_rows[c.key].slowdowns(), new_rows[c.key].slowdowns())
                        for c in changes]
            tested = [i for i, p in enumerate(p_values) if p is not None]
            adjusted = dict(zip(tested, holm_adjusted([p_values[i] for i in tested])))
            apart = sum(adjusted[i] < SWEEPS_APART_P for i in tested)
            raw_apart = sum(p_values[i] < SWEEPS_APART_P for i in tested)
            lines += ["", f"Run-to-run spread: each flat-out row's target slowdown in this sweep and in "
                      f"the one before ({previous.metadata['date']}; {code}), paired by the full row key "
                      f"(group included), the difference in points of the bare time, and the coefficient of "
                      f"variation of the two medians ({spread}). † marks "
                      f"a slowdown below {NEAR_ZERO_SLOWDOWN:.0%} (a floor, mostly): its CV divides by "
                      f"a number near zero, and the difference says more; it is left out of the median. "
                      f"*p*: a two-sided Mann-Whitney test of the two sweeps' per-repeat slowdowns; *Holm p*: "
                      f"the same corrected for testing all {len(tested)} rows at once. **{apart} of the "
                      f"{len(tested)} rows tell the two sweeps apart after the correction** (p < {SWEEPS_APART_P}; "
                      f"{raw_apart} before it). "
                      + ("The two sweeps ran the same code: the calibration goal is 0 rows told apart."
                         if old_commit == new_commit or same_code(old_commit, new_commit) else
                         "The two sweeps ran different code: rows told apart may be what the code changed, "
                         "and no calibration goal applies."), "",
                      _table([[c.label, f"{c.old_ratio:+.0%}", f"{c.new_ratio:+.0%}",
                               f"{(c.new_ratio - c.old_ratio) * 100:+.1f}", f"{c.cv:.1%}" + (" †" if small else ""),
                               "-" if p is None else f"{p:.3f}",
                               "-" if i not in adjusted else f"{adjusted[i]:.3f}"]
                              for i, (c, small, p) in enumerate(zip(changes, near_zero, p_values))],
                             ["row", "previous sweep", "this sweep", "difference, points", "CV", "p", "Holm p"])]
    return "\n".join(lines) + "\n"


def _two_sided_p(test, old: np.ndarray, new: np.ndarray) -> float | None:
    """None where there are too few repeats, or nothing varies, to test."""
    if min(len(old), len(new)) < 3 or np.ptp(np.concatenate([old, new])) == 0:
        return None
    return float(test(old, new, alternative="two-sided").pvalue)


def machines_section(machines: dict[str, Document], current: str | None) -> list[str]:
    """One column per machine: the same-run ratios and the ceilings, never absolute times."""
    if len(machines) < 1:
        return []
    ids = sorted(machines, key=lambda m: (m != current, m))
    ratios: dict[tuple, dict] = {}
    for machine, document in machines.items():
        for c in document.section("comparisons"):
            ratios.setdefault((c["method"], c["baseline"], c.get("workload", "")), {})[machine] = c["ratio"]
    ceilings: dict[tuple, dict] = {}
    for machine, document in machines.items():
        for c in document.section("ceilings"):
            key = (document.label(c), c["target"], c.get("placement", "free"))
            ceilings.setdefault(key, {})[machine] = "below 1,000" if c["ceiling"] is None else f"{c['ceiling']:,.0f}"
    described = []
    for machine in ids:
        meta = machines[machine].metadata
        converted = (f", converted from format {meta['converted_from_format']}"
                     if meta.get("converted_from_format") else "")
        described.append(f"- `{machine}`: {meta.get('cpu_count')} × {meta.get('cpu_model')}, kernel "
                         f"{meta.get('kernel')}, hypervisor {meta.get('hypervisor', 'not recorded')}, "
                         f"lockdown {meta.get('lockdown')}; sweep of {meta.get('date')}, commit "
                         f"{str(meta.get('commit'))[:12]}{converted}"
                         f" ([detail](machines/{machine}/README.md))")
    lines = ["", "## Machines", "",
             "Every machine whose sweeps are stored under `results/machines/` (add others with "
             "`tapbench merge`). Only ratios and rates are compared across machines, never "
             "absolute times. A cell is *-* where that machine did not measure the row (an older "
             "results format, or a method unavailable there): missing, never zero.", "", *described]
    if ratios:
        lines += ["", "Same-run ratios (overhead of one method over another in one group, the median of "
                      "per-repeat ratios):", "",
                  _table([[*key, *(f"{row[m]:.2f}" if m in row else "-" for m in ids)]
                          for key, row in ratios.items()], ["method", "over", "workload", *ids])]
    if ceilings:
        lines += ["", "Throughput ceilings, moves/s:", "",
                  _table([[*key, *(row.get(m, "-") for m in ids)] for key, row in ceilings.items()],
                         ["method", "target", "placement", *ids])]
    return lines


def power_section(power: dict | None) -> list[str]:
    """The gate's power benchmark (`tapbench gate --power`), from results/gate_power.json."""
    if not power:
        return []
    unchanged = power["unchanged"]
    lines = ["", "## The gate's power", "",
             f"`tapbench gate --power {power['rounds']}` at {power['commit'][:12]}, {power['date']} "
             f"({power['wall_s'] / 60:.0f} minutes; {power['repeats']} rounds a gate, threshold "
             f"{power['threshold']:.0%}, alpha {power['alpha']} after Holm): A/B gates of that commit against "
             f"itself. Unchanged, it failed **{sum(bool(f) for f in unchanged)} of {len(unchanged)}** gates"
             + (f" ({'; '.join(', '.join(f) for f in unchanged if f)})" if any(unchanged) else "") +
             ". With a quarter of a technique's own overhead per move added in one layer, how many gates "
             "failed each row the layer is part of:", ""]
    if not power.get("complete", True):
        lines[-1:-1] = ["", f"**Incomplete:** the run stopped after {len(unchanged)} unchanged gates and "
                            f"{len(power['injected'])} of the layers; what it measured is shown as measured."]
    def measured(found: dict, label: str) -> str:
        added = (found.get("measured_added_ns") or {}).get(label)
        return "" if added is None else f" (it added {added:,.0f} ns)"

    rows = [[layer, f"+{found['extra_ns']:,} ns a write ({found['of_technique']})",
             *[f"{label}: {count}/{power['rounds']}{measured(found, label)}" for label, count in found["caught"].items()]]
            for layer, found in power["injected"].items()]
    width = max((len(r) for r in rows), default=2)
    rows = [r + ["-"] * (width - len(r)) for r in rows]
    return lines + [_table(rows, ["layer made dearer", "added"] + ["caught in"] * (width - 2))]


HEADLINE_JSON = "headline.json"


def write_report(json_path: Path, readme: Path, machines: dict[str, Document] | None = None,
                 power: dict | None = None, measured_programs: dict[str, dict] | None = None,
                 kernels: dict | None = None) -> list[Path]:
    """README, headline.json and plots, side by side, from a results document alone (and, when
    given, the latest sweep of every stored machine, to judge each claim on each and for the
    cross-machine section; kernels: the kernel matrix's verdicts, see headline_json)."""
    document = Document.load(json_path)
    readme.parent.mkdir(parents=True, exist_ok=True)
    drawn = plots.draw(document, readme.parent)
    data = headline_json(document, machines, kernels)
    text = markdown(document, [p.name for p in drawn], data)
    # Other sweeps beside it: the one before (run-to-run spread) and the quick baseline (its
    # wall time). A file that is missing or unreadable is simply not reported.
    others = {}
    for name in ("previous.json", "baseline.json"):
        try:
            others[name] = Document.load(json_path.parent / name)
        except ResultsError:
            pass
    text += sweeps_section(document, others.get("previous.json"), others.get("baseline.json"))
    if machines:
        text += "\n".join(machines_section(machines, document.metadata.get("machine_id"))) + "\n"
    if power:
        text += "\n".join(power_section(power)) + "\n"
    if measured_programs:
        text += "\n".join(programs.section(measured_programs)) + "\n"
    text += "\n".join(provenance_section(document, others.get("previous.json"), machines, power,
                                          measured_programs)) + "\n"
    readme.write_text(text)
    headline_path = readme.parent / HEADLINE_JSON
    write_headline_json(data, headline_path)
    return [readme, headline_path, *drawn]


def provenance_section(document: Document, previous: Document | None, machines: dict[str, Document] | None,
                       power: dict | None, measured_programs: dict[str, dict] | None) -> list[str]:
    """The commit every section was measured at, and whether the code it measures (methods/,
    bpf/, preload/, gotargets/) changed since: figures of older code are said to be stale."""
    measured = [("This sweep (every section above unless named below)", document.metadata.get("commit"))]
    if previous is not None:
        measured.append(("The sweep before it (run-to-run spread)", previous.metadata.get("commit")))
    measured += [(f"Machine `{machine}`'s latest sweep", other.metadata.get("commit"))
                 for machine, other in sorted((machines or {}).items())]
    if power:
        measured.append(("The gate's power", power.get("commit")))
    measured += [(f"Program `{name}` (`run -- CMD`)", program.get("meta", {}).get("commit"))
                 for name, program in sorted((measured_programs or {}).items())]
    return ["", "## Provenance", "", "Which code each section measured, asked of git when this document was written:",
            "", *(f"- {staleness(commit, what)}" for what, commit in measured)]
