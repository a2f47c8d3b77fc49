"""Tables from results JSON only, so they can be regenerated without re-running anything:
what a method is (its claims, whether it is the baseline ...) comes from the document's
`methods` section, never from the code that measured it."""
from __future__ import annotations

import numpy as np
from tabulate import tabulate

from pathlib import Path

from bench.headline import attach_by_start, first_move_text, headline
from bench.results import ResultsError, load_json, method_label

# The plots drawn beside the README (bench/plots.py draws them under these names).
OVERHEAD_PNG, LATENCY_PNG, CEILING_PNG, DUEL_PNG = "overhead.png", "latency_cdf.png", "ceiling.png", "duel.png"
PLOTS = [(OVERHEAD_PNG, "Overhead per move, log scale"), (LATENCY_PNG, "Latency CDFs"),
         (CEILING_PNG, "Captured vs offered rate: the throughput ceiling"),
         (DUEL_PNG, "The duel: moves won against the deadline")]
# Run-to-run: below this target slowdown a row's CV says little (it divides by nearly zero).
NEAR_ZERO_SLOWDOWN = 0.10
# Two sweeps' repeats of a row are told apart below this p (two-sided Mann-Whitney).
SWEEPS_APART_P = 0.05


def _us(ns: float | None) -> str:
    return "-" if ns is None else f"{ns / 1000:.2f}"


def method_info(methods: dict, method: str) -> dict:
    """The methods-section entry of a method; empty for a document that has none."""
    return (methods or {}).get(method, {})


def is_baseline(methods: dict, row: dict) -> bool:
    return bool(method_info(methods, row["method"]).get("baseline"))


def claims_of(methods: dict, row: dict, aspect: str) -> list[dict]:
    """The article's claims about this row's variant of its method, on one aspect."""
    options = row.get("options") or {}
    return [c for c in method_info(methods, row["method"]).get("claims", [])
            if c["aspect"] == aspect and all(options.get(k) == v for k, v in c["when"].items())]


def claim_text(methods: dict, row: dict, aspect: str) -> str:
    return "; ".join(c["text"] for c in claims_of(methods, row, aspect)) or "-"


def capture_cell(row: dict) -> str:
    if row.get("not_applicable"):
        return f"n/a: {row['not_applicable']}"
    if row["captured"] is None:
        return "-"
    verdict = "exact" if row["exact"] else "NOT EXACT"
    if row.get("capture") == "count":
        return f"counted {row['captured']}/{row['expected']} {verdict} (floor)"
    return f"{row['captured']}/{row['expected']} {verdict}"


def overhead_cells(run: dict) -> list[str]:
    if run.get("paced"):
        # Paced wall time is set by the schedule: what an observer costs shows as lag instead.
        return [f"paced {run['rate']:g}/s: end lag {_us(run['lag_end_ns_max'])}", "-"]
    low, high = run["overhead_iqr_ns"]
    return [f"{_us(run['overhead_ns'])} [{_us(low)}, {_us(high)}]", ratio_cell(run)]


def ratio_cell(run: dict) -> str:
    """The target's slowdown as (observed − bare)/bare with its interval: '+99 % [+80, +120]'
    means the target took 1.99× as long. Flagged when the row is unstable."""
    ratio = run["overhead_ratio"]
    interval = run.get("overhead_ratio_ci")
    text = f"{ratio:+.0%}" + (f" [{interval[0] * 100:+.0f}, {interval[1] * 100:+.0f}]" if interval else "")
    return text + (" ⚠ unstable" if run.get("unstable") else "")


def floor_cell(run: dict) -> str:
    """The backend's overhead over its floor's (the same mechanism only counting), or why none."""
    if run.get("capture") == "count":
        return "(the floor)"
    if run.get("over_floor_note") or (run.get("over_floor") is not None and run["over_floor"] < 0):
        return "floor not above noise"
    if run.get("over_floor") is None:
        return "-"
    low, high = run["over_floor_ci"]
    return f"{run['over_floor']:.2f}× [{low:.2f}, {high:.2f}]"


def lost_cell(methods: dict, run: dict) -> str:
    """Expected minus captured, then the mechanism's own count of its losses in brackets,
    n/a where it keeps none (a tracer cannot drop: the target waits for it)."""
    if run["lost"] is None or run.get("not_applicable"):
        return "-"
    counted = run["lost_reported"] if method_info(methods, run["method"]).get("loss_source") else "n/a"
    return f"{run['lost']} ({counted})"


def runs_table(runs: list[dict], methods: dict, fmt: str = "github", detail: bool = True) -> str:
    """Every run: capture and cost. detail adds what other sections of the README show on
    their own (claim, latency, start-up), for a terminal that has no other section."""
    headers = ["method", "target", "G", "placement", "moves×runs", "captured/expected", "lost (own count)",
               "phantom", "in order", "bare µs/move", "observed µs/move", "overhead µs [IQR]",
               "target slowdown [95 % CI]", "overhead over floor [95 % CI]", "observer CPU µs/move"]
    if detail:
        headers += ["claimed", "latency p50/p99 µs", "ready ms"]
    rows = []
    for run in runs:
        row = [
            method_label(run), run["target"], run["goroutines"], run.get("placement", "free"),
            f"{run['moves']}×{run['repeats']}", capture_cell(run),
            lost_cell(methods, run),
            "-" if run["phantom"] is None else run["phantom"],
            "-" if run["in_order"] is None else ("yes" if run["in_order"] else "NO"),
            _us(run["ns_per_move_bare"]), _us(run["ns_per_move_observed"]),
            *overhead_cells(run), floor_cell(run), _us(run.get("observer_cpu_ns_per_move")),
        ]
        if detail:
            row += [claim_text(methods, run, "overhead_ns"),
                    f"{_us(run['latency_p50_ns'])}/{_us(run['latency_p99_ns'])}", f"{run['ready_ms']:.0f}"]
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def skipped_table(skipped: list[dict], fmt: str = "github") -> str:
    return tabulate([[s["method"], s["reason"]] for s in skipped], headers=["method", "skipped: reason"],
                    tablefmt=fmt)


def markdown(document: dict, plots: list[str] | None = None) -> str:
    """The results README; plots: the image files drawn beside it (None: all of PLOTS)."""
    meta = document["metadata"]
    methods = document.get("methods", {})
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
           if meta.get("dirty") or str(meta.get("commit", "")).endswith("-dirty") else "") + ".",
        "",
        *headline(document),
        "",
        "## Every run",
        "",
        "Every observed run is verified against the opponent's ground truth: *captured* counts "
        "distinct moves of the generator seen with the right kind; *lost* is expected minus "
        "captured, with the mechanism's own count of its losses in brackets (n/a: it keeps none); "
        "*phantom* counts events "
        "that are not a first sighting of a generator move. *Overhead* is the median of paired "
        "(observed − bare) per-move times from runs interleaved in the same invocation. *Target "
        "slowdown* is the median over the repeats of (observed − bare) / bare, each repeat's "
        "two runs paired, with a bootstrap 95 % interval: +99 % means the target took 1.99× as "
        "long. Every ratio in this file is built from these per-repeat ratios. *Overhead over "
        "floor* divides a backend's overhead by its floor's, repeat by repeat: the floor is the same "
        "mechanism with `--capture count` (the same hook and filter, the same stop or interposed "
        "call, the writes only counted: nothing copied, stamped or sent), run beside it against "
        "the same bare runs; 1.5× means the backend costs half again what its mechanism must. "
        "⚠ marks a row "
        "whose bare runs spread or split into two clusters, or whose interval is wide: read its "
        "median as a rough figure. Absolute times belong to this machine on this day; ratios travel.",
        "",
        runs_table(document["runs"], methods, detail=False),
    ]
    if document.get("comparisons"):
        lines += ["", "## Same-run ratios", "",
                  "Per-move overhead of one method over another, median of the ratios taken "
                  "repeat by repeat (both sides ran next to the same bare run), with its "
                  "bootstrap 95 % interval.", "",
                  tabulate([[c["method"], c["baseline"], c.get("workload", ""), f"{c['ratio']:.2f}",
                             "-" if "ci" not in c else f"[{c['ci'][0]:.2f}, {c['ci'][1]:.2f}]",
                             len(c["samples"])] for c in document["comparisons"]],
                           headers=["method", "over", "workload", "ratio", "95 % CI", "repeats"],
                           tablefmt="github", disable_numparse=True)]
    if document.get("bystanders"):
        lines += ["", "## Bystander cost", "",
                  "Time per write of an unwatched process (a second opponent, flat out) while the "
                  "method watches another opponent paced at 1000 moves/s, against the same process "
                  "beside the same paced opponent with no observer anywhere (so the paced "
                  "opponent's own share of the CPUs is not counted as the method's); interleaved, "
                  "median of the per-repeat ratios. The article's 'zero intrusion' for eBPF is "
                  "about the watched process only.", "",
                  tabulate([[method_label(b) + ("" if b.get("control") == "paced opponent unobserved"
                                                else " (control without the paced opponent)"),
                             f"{b.get('bystander', 'a copy of the opponent')} (`{b.get('bystander_target', 'go')}`)",
                             f"{b['bystander_ns_per_write_alone'] / 1000:.2f}",
                             f"{b['bystander_ns_per_write_watching'] / 1000:.2f}",
                             f"{b['bystander_ratio']:.2f}×", b["repeats"]] for b in document["bystanders"]],
                           headers=["method watching someone else", "bystander", "bystander µs/write alone",
                                    "while watching", "ratio", "repeats"],
                           tablefmt="github", disable_numparse=True)]
    lines += placement_section(document["runs"], methods)
    lines += duel_section(document.get("duels", []))
    lines += exec_section(document.get("exec", []))
    lines += profile_section(document.get("bpf_profile", []), document["runs"])
    lines += latency_section(document["runs"], methods, document.get("latency_floor", []))
    lines += ceiling_section(document.get("ceilings", []), methods)
    lines += startup_section(document["runs"], document.get("attach", []), methods, document.get("bpf_profile", []))
    lines += intrusiveness_section(document)
    drawn = [(name, title) for name, title in PLOTS if plots is None or name in plots]
    if drawn:
        lines += ["", "## Plots", ""] + [f"![{title}]({name})" for name, title in drawn]
    notes = [r for r in document["runs"] if r.get("not_applicable")]
    if notes:
        lines += ["", "## Not applicable", ""] + [
            f"- {method_label(r)} on `{r['target']}`: {r['not_applicable']}" for r in notes]
    if document.get("skipped"):
        lines += ["", "## Skipped", "", skipped_table(document["skipped"])]
    return "\n".join(lines) + "\n"


def _table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def duel_table(duels: list[dict], fmt: str = "github") -> str:
    deadlines = sorted({d for duel in duels for d in duel["deadlines_us"]})
    rows = []
    for duel in duels:
        rates = dict(zip(duel["deadlines_us"], duel["win_rate"]))
        rows.append([method_label(duel), duel["target"], duel["placement"], f"{duel['moves']} at {duel['rate']:g}/s",
                     *(f"{rates[d]:.1%}" if d in rates else "-" for d in deadlines),
                     "-" if duel["delay_p50_ns"] is None else _us(duel["delay_p50_ns"]),
                     duel["unanswered"], duel["wrong"]])
    return tabulate(rows, headers=["spy watches through", "target", "placement", "moves",
                                   *(f"≤ {d:g} µs" for d in deadlines), "answer delay p50 µs",
                                   "unanswered", "wrong"], tablefmt=fmt, disable_numparse=True)


def exec_section(found: list[dict]) -> list[str]:
    if not found:
        return []
    rows = [[method_label(e), e["how"] or f"{'FAILED' if e.get('failed') else 'cannot'}: {e['error']}",
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


def profile_section(profiles: list[dict], runs: list[dict]) -> list[str]:
    """The kernel's timing of each BPF program, beside the overhead per move the sweep measured
    for the same variant, target and placement: what the program accounts for, and what not."""
    if not profiles:
        return []

    def measured_overhead(row: dict) -> float | None:
        same = [r for r in runs if r["method"] == row["method"] and r["options"] == row["options"]
                and r["target"] == row["target"] and r["goroutines"] == 1 and not r["rate"]
                and r.get("placement") == row["placement"]]
        return max(same, key=lambda r: r["moves"])["overhead_ns"] if same else None

    rows = []
    for profile in profiles:
        variants: dict[str, list[dict]] = {}
        for row in profile["programs"]:
            variants.setdefault(method_label(row), []).append(row)
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
            "*overhead* is the same variant's measured overhead per move in the table above; "
            "*outside the programs* is the difference: entering the hook (a syscall tracepoint "
            "sends every system call through the slow path), the consumer's share of the CPU, "
            "caches. The `exec` variant finds its target through a map that `sched_process_exec` "
            "fills (what `watch --name --wait` uses): its extra ns per run over `raw, poll` is the "
            "lookup's cost.", "",
            _table(rows, ["variant", "placement", "program", "runs/move", "ns/run", "program ns/move",
                          "overhead ns/move", "outside the programs"])]


def duel_section(duels: list[dict]) -> list[str]:
    if not duels:
        return []
    return ["", "## The duel", "",
            "A referee launches the opponent, which stamps every move just before writing it. A spy "
            "watches it through each technique (its live settings: consumers woken, not polled) and "
            "answers every move it sees with the move that beats it. The referee counts a win when "
            "the right answer came within the deadline of the opponent's own stamp; the share of "
            "moves won, per deadline (`tapbench duel`):", "", duel_table(duels)]


def placement_section(runs: list[dict], methods: dict) -> list[str]:
    """Each flat-out row measured in both placements, side by side, and whether the method's
    default placement (what run and watch use) is the one measured cheaper here."""
    by_row: dict[tuple, dict] = {}
    for r in runs:
        if r.get("paced") or is_baseline(methods, r) or r.get("not_applicable"):
            continue
        key = (method_label(r), r["method"], r["target"], r["goroutines"], r["moves"])
        by_row.setdefault(key, {})[r.get("placement", "free")] = r
    rows = []
    for (label, method, target, goroutines, moves), placed in by_row.items():
        if not {"shared", "split"} <= set(placed):
            continue
        shared, split = placed["shared"]["overhead_ns"], placed["split"]["overhead_ns"]
        cheaper = "shared" if shared < split else "split"
        default = method_info(methods, method).get("default_placement", "-")
        rows.append([label, target, goroutines, moves, _us(shared), _us(split), f"{max(shared, split) / max(min(shared, split), 1):.1f}×",
                     cheaper, default + ("" if default == cheaper else " (**not** the cheaper one here)")])
    if not rows:
        return []
    return ["", "## Placement", "",
            "Overhead per move with the target and the observer on one CPU (*shared*, the article's "
            "'one core') and with the observer on the other CPUs (*split*), each against bare runs "
            "in the same placement. A mechanism that stops the target and wakes it pays for waking "
            "it on another vCPU; a consumer that runs beside the target takes its CPU when they "
            "share one. *Default* is the placement `run` and `watch` use for the method.", "",
            _table(rows, ["method", "target", "G", "moves", "shared µs/move", "split µs/move", "factor",
                          "cheaper here", "default"])]


def latency_section(runs: list[dict], methods: dict, floors: list[dict] = ()) -> list[str]:
    rows = [r for r in runs if not is_baseline(methods, r) and r.get("latency_p50_ns") is not None]
    if not rows:
        return []
    batch_us = [r.get("batch_ns_max") or 0 for r in rows]
    floor_lines = [] if not floors else [
        "", "The floor, with no interception at all: the same opponent at the same rate, its stdout a "
        "pipe that Python reads blocking (the kernel wakes the reader at each write), every move "
        "stamped and measured the same way. No technique whose consumer is woken can beat it in "
        "that placement: what it shows is this machine's wake-up and Python's.", "",
        _table([[f["placement"], f"{f['rate']:g}/s", f["stamped"],
                 *(_us(f.get(k)) for k in ("latency_p50_ns", "latency_p90_ns", "latency_p99_ns",
                                           "latency_p999_ns", "latency_max_ns"))] for f in floors],
               ["pipe reader, placement", "rate", "stamped moves", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs",
                "max µs"])]
    return ["", "## Observation latency", "",
            "From the opponent's own CLOCK_MONOTONIC stamp, taken through the vDSO immediately "
            "before its write(), to the moment Python received the move: one definition for every "
            "method (*latency from: target*), over the stamped moves of every repeat (every 64th "
            "of each writer flat out, every move at 20,000/s). The last two columns are a "
            "breakdown: from the mechanism's own stamp of the write (BPF, the hook, the tracer's stop, strace's print) to Python. The ring "
            "readers stamp a batch's arrival once, so a move's latency is exact to within the "
            f"time its batch took to hand over (at most {max(batch_us) / 1000:.0f} µs in these rows).", "",
            _table([[method_label(r), r["target"], r["goroutines"], r.get("placement", "free"),
                     f"{r['moves']}×{r['repeats']}",
                     f"{r['rate']:g}/s" if r.get("paced") else "flat out", r.get("latency_from", "mechanism"),
                     *(_us(r.get(k)) for k in ("latency_p50_ns", "latency_p90_ns", "latency_p99_ns",
                                               "latency_p999_ns", "latency_max_ns",
                                               "mechanism_latency_p50_ns", "mechanism_latency_p99_ns"))]
                    for r in rows],
                   ["method", "target", "G", "placement", "moves×runs", "rate", "latency from", "p50 µs", "p90 µs",
                    "p99 µs", "p99.9 µs", "max µs", "mechanism→Python p50 µs", "p99 µs"]), *floor_lines]


def ceiling_section(ceilings: list[dict], methods: dict) -> list[str]:
    if not ceilings:
        return []
    rows = []
    for c in ceilings:
        limit = "-" if c["first_failure"] is None else f"{c['first_failure']:,.0f}"
        placement = c.get("placement", "free")
        rows.append([method_label(c), c["target"], placement,
                     "below 1,000" if c["ceiling"] is None else f"{c['ceiling']:,.0f}",
                     limit, c["limited_by"], f"{c['unobserved_max']:,.0f}", len(c["probes"]),
                     # the article's "on one core" is the shared placement
                     claim_text(methods, c, "ceiling_per_s") if placement == "shared" else "-"])
    confirmations = max((c.get("confirmations", 1) for c in ceilings), default=1)
    return ["", "## Throughput ceiling", "",
            "The highest paced rate (moves/s) at which every move was captured, in order, with no "
            "phantom, and the target still wrote at ≥ 95 % of the offered rate. Found by a ×4 ramp "
            "from 1,000/s up to 90 % of the target's unobserved flat-out rate (the median of its "
            "flat-out runs), then 4 bisection steps (±9 %) in which a rate holds only if "
            f"{confirmations} probes in a row hold. The ceiling lies between it and the first "
            "failure. *loss*: the method missed moves; *disorder*: moves arrived out of order; "
            "*throttled*: the target could not keep the schedule while watched (at the first "
            "failing rate the target also runs alone as a control, and the cell says when it was "
            "throttled too); *backlog*: the consumer was still receiving events more than 0.1 s "
            "after the target's last write (it buffered what it could not keep up with).", "",
            _table(rows, ["method", "target", "placement", "ceiling moves/s", "first failure at", "limited by",
                          "target alone, flat out", "probes", "claimed"])]


def startup_section(runs: list[dict], attaches: list[dict], methods: dict, profiles: list[dict] = ()) -> list[str]:
    launch, compiled, reused = {}, {}, {}
    for r in runs:
        if not is_baseline(methods, r) and not r.get("not_applicable"):
            label = method_label(r)
            launch.setdefault(label, []).append(r["ready_ms"])
            compiled.setdefault(label, []).extend(r.get("ready_ms_compiled", []))
            reused.setdefault(label, []).extend(r.get("ready_ms_reused", []))
    lines = ["", "## Start-up", "",
             "*launch*: from starting the opponent (held at a gate) to the mechanism being in place "
             "(BPF compile and load, tracer attached, preload ring mapped), median over the rows. "
             "*attach*: attaching to an opponent already writing 10,000 moves/s, until attach() "
             "returns and until the first move is received (median of the repeats).", "",
             "The bcc backends (ebpf, uprobe) compile their C at the first start in a process and load the "
             "same bytecode, with fresh maps and the target's PID written in, at every later one "
             "(`methods/bpf_loader.py`); the sweep is one process. Their starts are shown apart: *compiling* "
             "(clang runs) and *reusing* (it does not), with how many of each. bpftrace compiles at every start. "
             "The first attach of each bcc method is made to compile.", ""]
    attach_by_label = {method_label(a): a for a in attaches}
    rows = []
    for label in sorted(set(launch) | set(attach_by_label)):
        attach = attach_by_label.get(label)
        cold_attach, warm_attach = attach_by_start(attach)
        rows.append([label, f"{np.median(launch[label]):.0f}" if label in launch else "-",
                     _starts_cell(compiled.get(label, [])), _starts_cell(reused.get(label, [])),
                     _median_ms(attach["attach_ms"]) if attach else "-",
                     _median_ms(attach["first_move_ms"]) if attach else "-",
                     _starts_cell(cold_attach), _starts_cell(warm_attach)])
    loads = [p["empty_program_load_ms"] for p in profiles if p.get("empty_program_load_ms") is not None]
    bcc_floor = [] if not loads else [
        "", f"bcc compiles every program with clang: one that does nothing took {np.median(loads):.0f} ms "
        "to compile and load here (median of its own runs, apart from those above: the two differ by the "
        "machine's noise). That is the floor under a bcc backend's start-up when it compiles."]
    return lines + [_table(rows, ["method", "launch: ready ms", "launch, compiling: ms (starts)",
                                  "launch, reusing: ms (starts)", "attach ms", "attach: first move ms",
                                  "attach, compiling: first move ms", "attach, reusing: first move ms"])] + bcc_floor


def _starts_cell(values: list[float]) -> str:
    """'-' where the method has no such start, else the median and how many starts."""
    return "-" if not values else f"{np.median(values):.0f} ({len(values)})"


def _median_ms(values: list[float]) -> str:
    return "-" if not values else f"{np.median(values):.1f}"


def intrusiveness_section(document: dict) -> list[str]:
    """One row per method: what the opponent noticed, attach, privileges, SIGKILL, bystander."""
    runs, methods = document["runs"], document.get("methods", {})
    by_method: dict[str, dict] = {}
    claimed: dict[str, str] = {}
    for r in runs:
        checks = r.get("self_checks") or ([r["self_check"]] if r.get("self_check") else [])
        if is_baseline(methods, r) or r.get("not_applicable") or not checks:
            continue
        seen = by_method.setdefault(r["method"], {"tracer": set(), "ld_preload": set(), "libraries": set()})
        for check in checks:  # what any repeat noticed
            if check.get("tracer_pid"):
                seen["tracer"].add("TracerPid ≠ 0")
            if check.get("ld_preload"):
                seen["ld_preload"].add("LD_PRELOAD set")
            seen["libraries"].update(check.get("unexpected_libraries") or [])
        claimed[r["method"]] = "; ".join(c["text"] for aspect in ("intrusiveness", "privileges")
                                         for c in claims_of(methods, r, aspect)) or "-"
    if not by_method:
        return []
    privileges = {}
    for p in document.get("privileges", []):
        label = method_label(p)
        as_user = p.get("as_user")
        user = "" if not as_user else (
            f" (as uid {as_user['uid']} with them: works)" if as_user["worked"] else
            f" (as uid {as_user['uid']} with them: fails: {as_user['error']})")
        privileges[p["method"]] = privileges.get(p["method"], []) + [
            f"{label}, {p.get('mode', 'launch')}: {p['minimum'] or 'none of the sets tried'}{user}"]
    attach = {a["method"]: a for a in document.get("attach", [])}
    sigkill = {}
    for k in document.get("sigkill", []):
        outcome = k.get("fate") or k.get("error")
        left = list(k.get("left_behind") or [])
        if k.get("tracer_pid_after"):
            left.append(f"TracerPid {k['tracer_pid_after']}")
        sigkill[k["method"]] = sigkill.get(k["method"], []) + [
            f"{method_label(k)} ({k['mode']}): {outcome}" + (f"; {', '.join(left)}" if left else "; nothing left")]
    bystander = {}
    for b in document.get("bystanders", []):
        bystander[b["method"]] = bystander.get(b["method"], []) + [
            f"{method_label(b)}, {b.get('bystander', 'a copy of the opponent')}: {b['bystander_ratio']:.2f}×"]
    rows = []
    for method, seen in by_method.items():
        noticed = sorted(seen["tracer"] | seen["ld_preload"]) + [f"library {lib}" for lib in sorted(seen["libraries"])]
        info = method_info(methods, method)
        if method in attach and attach[method]["first_move_ms"]:
            can_attach = f"yes (measured: {first_move_text(attach[method])})"
        elif not info:
            can_attach = "-"
        elif info["can_attach"]:
            can_attach = "yes (not measured here)"
        else:
            can_attach = f"no: {info['attach_unavailable']}"
        rows.append([method, ", ".join(noticed) or "nothing", can_attach,
                     "<br>".join(privileges.get(method, ["-"])), "<br>".join(sigkill.get(method, ["-"])),
                     "<br>".join(bystander.get(method, ["-"])), claimed[method]])
    return ["", "## Intrusiveness matrix", "",
            "Measured, not asserted. *Noticed by the opponent*: its own self-check at start "
            "(/proc/self/status TracerPid, the LD_PRELOAD variable, libraries mapped that a plain "
            "run does not map). *Least privilege*: the smallest capability bounding set, tried in "
            "order with `setpriv` (root uid kept), under which a launched run still captured "
            "exactly (*launch*) or a watch attached to an opponent root had started saw its moves "
            "(*attach*). *SIGKILL*: tapbench killed while watching; the opponent's state a second later "
            "and what was left on the machine. *Bystander*: an unwatched process's time per write "
            "while the method watches someone else, over the same with no observer.", "",
            _table(rows, ["method", "noticed by the opponent", "attach to a running process",
                          "least privilege", "SIGKILL of tapbench", "bystander cost", "claimed"])]


def sweeps_section(document: dict, previous: dict | None, quick: dict | None) -> str:
    """Wall times of the sweeps, and the spread of each overhead ratio between this sweep and
    the one before it (same rows, same machine)."""
    from scipy.stats import mannwhitneyu  # a second to import: only when comparing

    from bench.gate import compare_documents, machines_differ, overhead_ratios
    from bench.results import row_key, same_code

    meta = document["metadata"]
    methods = document.get("methods", {})
    lines = ["", "## Sweeps", ""]
    if meta.get("wall_s") is not None:
        extended = sorted({r["repeats"] for r in document["runs"] if r["repeats"] > meta.get("repeats", r["repeats"])})
        more = f", up to {extended[-1]} where the spread asked for more" if extended else ""
        lines.append(f"- this sweep (`make bench`, {meta.get('repeats', '?')} repeats{more}): {meta['wall_s']:.0f} s")
        if meta.get("phase_s"):
            lines.append("  - where the time went: " + ", ".join(
                f"{kind} {seconds:.0f} s" for kind, seconds in sorted(meta["phase_s"].items(), key=lambda k: -k[1])))
    if quick and quick["metadata"].get("wall_s") is not None:
        lines.append(f"- quick sweep (`tapbench sweep --quick`, this machine's `baseline.json`, "
                     f"{quick['metadata']['date']}): {quick['metadata']['wall_s']:.0f} s")
    if previous and not machines_differ(previous, document):
        changes, _ = compare_documents(previous, document)
        # Paced rows have no overhead ratio; a not-applicable row's is noise around zero.
        not_applicable = {row_key(r) for r in document["runs"] if r.get("not_applicable")}
        changes = [c for c in changes if not c.note and c.key not in not_applicable]
        if changes:
            # A CV divides by the mean slowdown: for a floor's few per cent it says little.
            near_zero = [abs(c.old_ratio + c.new_ratio) / 2 < NEAR_ZERO_SLOWDOWN for c in changes]
            cvs = [c.cv for c, small in zip(changes, near_zero) if not small]
            old_commit, new_commit = previous["metadata"].get("commit"), meta.get("commit")
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
            # Whether the two sweeps' per-repeat ratios tell apart at all: a CV above 5 % with a
            # large p is the sampling spread of a few repeats, not a shift of the machine or code.
            old_rows, new_rows = ({row_key(r): r for r in d["runs"]} for d in (previous, document))
            p_values = [_two_sided_p(mannwhitneyu, overhead_ratios(old_rows[c.key]), overhead_ratios(new_rows[c.key]))
                        for c in changes]
            above = [p for c, p, small in zip(changes, p_values, near_zero) if not small and c.cv > 0.05]
            apart = sum(p is not None and p < SWEEPS_APART_P for p in above)
            lines += ["", f"Run-to-run spread: each flat-out row's target slowdown in this sweep and in "
                      f"the one before ({previous['metadata']['date']}; {code}), the difference in "
                      f"points of the bare time, and their coefficient of variation ({spread}). † marks "
                      f"a slowdown below {NEAR_ZERO_SLOWDOWN:.0%} (a floor, mostly): its CV divides by "
                      f"a number near zero, and the difference says more; it is left out of the median. "
                      f"*p*: a two-sided Mann-Whitney test of the two sweeps' per-repeat slowdowns; of the "
                      f"{len(above)} rows above 5 %, {apart} differ at p < {SWEEPS_APART_P} and the others "
                      f"are within the spread of their own repeats.", "",
                      _table([[c.label, f"{c.old_ratio:+.0%}", f"{c.new_ratio:+.0%}",
                               f"{(c.new_ratio - c.old_ratio) * 100:+.1f}", f"{c.cv:.1%}" + (" †" if small else ""),
                               "-" if p is None else f"{p:.3f}"]
                              for c, small, p in zip(changes, near_zero, p_values)],
                             ["row", "previous sweep", "this sweep", "difference, points", "CV", "p"])]
    return "\n".join(lines) + "\n"


def _two_sided_p(test, old: np.ndarray, new: np.ndarray) -> float | None:
    """None where there are too few repeats, or nothing varies, to test."""
    if min(len(old), len(new)) < 3 or np.ptp(np.concatenate([old, new])) == 0:
        return None
    return float(test(old, new, alternative="two-sided").pvalue)


def machines_section(machines: dict[str, dict], current: str | None) -> list[str]:
    """One column per machine: the same-run ratios and the ceilings, never absolute times."""
    if len(machines) < 1:
        return []
    ids = sorted(machines, key=lambda m: (m != current, m))
    ratios: dict[tuple, dict] = {}
    for machine, document in machines.items():
        for c in document.get("comparisons", []):
            ratios.setdefault((c["method"], c["baseline"], c.get("workload", "")), {})[machine] = c["ratio"]
    ceilings: dict[tuple, dict] = {}
    for machine, document in machines.items():
        for c in document.get("ceilings", []):
            key = (method_label(c), c["target"], c.get("placement", "free"))
            ceilings.setdefault(key, {})[machine] = "below 1,000" if c["ceiling"] is None else f"{c['ceiling']:,.0f}"
    described = []
    for machine in ids:
        meta = machines[machine]["metadata"]
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
        lines += ["", "Same-run ratios (overhead of one method over another, same invocation):", "",
                  _table([[*key, *(f"{row[m]:.2f}" if m in row else "-" for m in ids)]
                          for key, row in ratios.items()], ["method", "over", "workload", *ids])]
    if ceilings:
        lines += ["", "Throughput ceilings, moves/s:", "",
                  _table([[*key, *(row.get(m, "-") for m in ids)] for key, row in ceilings.items()],
                         ["method", "target", "placement", *ids])]
    return lines


def write_report(json_path: Path, readme: Path, machines: dict[str, dict] | None = None) -> list[Path]:
    """README and plots, side by side, from a results JSON alone (and, when given, the latest
    sweep of every stored machine for the cross-machine section)."""
    from bench import plots  # matplotlib takes a second to import: only when drawing

    document = load_json(json_path)
    readme.parent.mkdir(parents=True, exist_ok=True)
    drawn = plots.draw(document, readme.parent)
    text = markdown(document, [p.name for p in drawn])
    # Other sweeps beside it: the one before (run-to-run spread) and the quick baseline (its
    # wall time). A file that is missing or unreadable is simply not reported.
    others = {}
    for name in ("previous.json", "baseline.json"):
        try:
            others[name] = load_json(json_path.parent / name)
        except ResultsError:
            pass
    text += sweeps_section(document, others.get("previous.json"), others.get("baseline.json"))
    if machines:
        text += "\n".join(machines_section(machines, document["metadata"].get("machine_id"))) + "\n"
    readme.write_text(text)
    return [readme, *drawn]
