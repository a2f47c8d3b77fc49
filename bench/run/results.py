"""Writing results: the metadata of a measurement, a row summarised from its executions, the
document written atomically, and older documents converted to today's format. This is the
measuring side (it knows the backends and the sweep plan); bench/document/ reads what it writes.
"""
from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.document.rows import RESULTS_FORMAT, SECTIONS, Document, ResultsError, Row, method_label
from bench.machine import fingerprint, machine_id
from bench.run.runner import Execution
from bench.stats import instability, median_interval, per_repeat_ratios
from bench.run.targets import ROOT, Workload
from methods import REGISTRY
from methods._kernel.process import TargetUser

__all__ = ["RESULTS_FORMAT", "ResultsError", "Document", "Row", "metadata", "summarize", "write_json",
           "make_document", "document_of", "load_document", "upgrade_document", "methods_section", "label_of"]


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "unknown"


def package_version(name: str) -> str:
    return _first_line(["dpkg-query", "-W", "-f=${Version}", name])


def uncommitted_changes() -> list[str]:
    """Files that differ from the commit checked out, untracked ones included (a new module in
    methods/ is a new backend): a result measured with any is not reproducible from history."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                             timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line[3:] for line in out.stdout.splitlines()] if out.returncode == 0 else []


def metadata() -> dict:
    """What was measured on, shared by all runs of one invocation: the machine's fingerprint
    (bench/machine.py) and the id it is stored under, the software, the commit."""
    dirty = bool(uncommitted_changes())
    machine = fingerprint()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **machine,
        "machine_id": machine_id(machine),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "python": platform.python_version(),
        "bcc": package_version("python3-bpfcc"),
        "go": _first_line(["go", "version"]),
        "commit": _first_line(["git", "rev-parse", "HEAD"]) + ("-dirty" if dirty else ""),
        "dirty": dirty,
        "argv": sys.argv[1:],
    }


def percentiles(samples: np.ndarray, prefix: str = "latency", points=(50, 90, 99, 99.9)) -> dict:
    if samples.size == 0:
        return {f"{prefix}_p{str(p).replace('.', '')}_ns": None for p in points} | {f"{prefix}_max_ns": None}
    values = np.percentile(samples, points)
    return {f"{prefix}_p{str(p).replace('.', '')}_ns": int(v) for p, v in zip(points, values)} | {
        f"{prefix}_max_ns": int(samples.max())}


# Percentiles kept per row to draw its latency CDF without keeping millions of samples.
CDF_POINTS = [*range(0, 99), 99, 99.5, 99.9, 99.99, 100]


def _cdf(samples: np.ndarray) -> list[list[float]]:
    if samples.size == 0:
        return []
    return [[p, int(v)] for p, v in zip(CDF_POINTS, np.percentile(samples, CDF_POINTS))]


def summarize(method: str, options: dict, workload: Workload, bare: list[Execution],
              observed: list[Execution], group: str = "run") -> Row:
    """One row: verified capture summed over repeats, medians with intervals, raw samples.
    group: the name of the group it ran in (its bare runs are the group's)."""
    if REGISTRY[method].baseline:
        observed = bare
    bare_ns = np.array([e.ns_per_move for e in bare])
    observed_ns = np.array([e.ns_per_move for e in observed])
    # Bare and observed runs alternate, so pair them up: each pair saw the same machine state.
    paired = observed_ns[:len(bare_ns)] - bare_ns[:len(observed_ns)]
    ratio, ratio_low, ratio_high = median_interval(per_repeat_ratios(observed_ns, bare_ns))
    verdicts = [e.verdict for e in observed if e.verdict is not None]
    not_applicable = next((e.not_applicable for e in observed if e.not_applicable), None)
    latencies = np.concatenate([e.latencies_ns for e in observed]) if observed else np.zeros(0)
    by_mechanism = np.concatenate([e.mechanism_latencies_ns for e in observed]) if observed else np.zeros(0)
    cost = whole_cost(bare, observed)
    return Row(
        group=group, method=method, options=options, target=workload.target, moves=workload.moves,
        rate=float(workload.rate), goroutines=workload.goroutines, seed=workload.seed,
        placement=workload.placement,
        capture=options.get("capture") or "full",
        repeats=len(observed),
        target_user=(TargetUser.current() if workload.user is None else TargetUser.resolve(workload.user)).name,
        expected=sum(e.truth.written for e in observed),
        captured=sum(v.captured for v in verdicts) if verdicts else None,
        lost=sum(v.lost for v in verdicts) if verdicts else None,
        lost_reported=sum(e.lost_reported for e in observed),
        phantom=sum(v.phantom for v in verdicts) if verdicts else None,
        in_order=all(v.in_order for v in verdicts) if verdicts else None,
        exact=all(v.exact for v in verdicts) if verdicts and not not_applicable else None,
        not_applicable=not_applicable,
        ns_per_move_bare=float(np.median(bare_ns)),
        ns_per_move_observed=float(np.median(observed_ns)),
        overhead_ns=float(np.median(paired)),
        overhead_iqr_ns=[float(x) for x in np.percentile(paired, [25, 75])],
        overhead_ratio=ratio,
        overhead_ratio_ci=[ratio_low, ratio_high],
        unstable=instability(bare_ns, ratio, ratio_low, ratio_high) if not workload.rate else [],
        ready_ms=float(np.median([e.ready_ns for e in observed]) / 1e6),
        # A bcc backend compiles at its first start in a process and loads that bytecode at later
        # ones (methods/_kernel/bpf_loader.py): its two kinds of start apart. Empty for other methods.
        **{f"ready_ms_{kind}": [e.ready_ns / 1e6 for e in observed
                                if e.mechanism.get(method, {}).get("compiled_at_start") is compiled]
           for kind, compiled in (("compiled", True), ("reused", False))},
        **cost,
        paced=workload.rate > 0,
        lag_end_ns_max=max(max(w["lag_end_ns"] for w in e.truth.report["writers"]) for e in observed),
        latency_from="target",
        latency_samples=int(latencies.size),
        **percentiles(latencies),
        latency_cdf_ns=_cdf(latencies),
        latency_p99_per_repeat_ns=[int(np.percentile(e.latencies_ns, 99)) for e in observed if len(e.latencies_ns)],
        **percentiles(by_mechanism, "mechanism_latency"),
        batch_ns_max=max((e.mechanism.get("batch_ns_max", 0) for e in observed), default=0),
        samples_bare_ns_per_move=bare_ns.tolist(),
        samples_observed_ns_per_move=observed_ns.tolist(),
        verdicts=[v.as_dict() for v in verdicts],
        mechanism=[e.mechanism for e in observed],
        self_checks=[e.truth.report["self_check_start"] for e in observed],
    )


def per_move(executions: list[Execution], value) -> np.ndarray:
    return np.array([value(e) / max(e.truth.written, 1) for e in executions], dtype=float)


def whole_cost(bare: list[Execution], observed: list[Execution]) -> dict:
    """What watching costs the machine per event, counted whole, each repeat against its own
    bare run: the target's extra CPU over its move loop plus the observer's CPU from release to
    the last event (less the harness's own, measured in the bare run). Set-up and teardown are
    per run, not per event: kept apart."""
    count = min(len(bare), len(observed))
    target_extra = (per_move(observed, lambda e: e.target_loop_cpu_ns)[:count]
                    - per_move(bare, lambda e: e.target_loop_cpu_ns)[:count])
    observer = (per_move(observed, lambda e: e.observer_cpu_ns)[:count]
                - per_move(bare, lambda e: e.observer_cpu_ns)[:count])
    samples = target_extra + observer
    cost, low, high = median_interval(samples)
    return {"cpu_cost_ns_per_event": cost, "cpu_cost_ci": [low, high], "samples_cpu_cost_ns_per_event": samples.tolist(),
            "target_extra_cpu_ns_per_move": float(np.median(target_extra)),
            "observer_cpu_ns_per_move": float(np.median(observer)),
            "harness_cpu_ns_per_move": float(np.median(per_move(bare, lambda e: e.observer_cpu_ns))),
            "target_cpu_ns_per_move": float(np.median(per_move(observed, lambda e: e.target_loop_cpu_ns))),
            "target_cpu_ns_per_move_bare": float(np.median(per_move(bare, lambda e: e.target_loop_cpu_ns))),
            "observer_setup_cpu_ms": float(np.median([e.setup_cpu_ns for e in observed])) / 1e6,
            "observer_teardown_cpu_ms": float(np.median([e.teardown_cpu_ns for e in observed])) / 1e6}


def add_floor_ratios(rows: list[Row]) -> None:
    """For every row measured beside its floor (the same method and options with --capture
    count, in the same group, against the same bare runs): its overhead over the floor's,
    repeat by repeat, with an interval. How close a backend comes to the least its mechanism
    costs, which carries from one machine to another better than an absolute time. A floor
    whose own slowdown interval includes zero is noise: nothing is divided by it."""
    def variant(row: Row) -> tuple:
        return (row.group, row.method, row.placement, tuple(sorted((k, v) for k, v in row.options.items() if k != "capture")))

    floors = {variant(r): r for r in rows if r.capture == "count"}
    for row in rows:
        floor = floors.get(variant(row))
        row.over_floor = row.over_floor_ci = row.over_floor_samples = row.over_floor_note = None
        if row.capture == "count" or floor is None or row.paced:
            continue
        _, low, high = median_interval(floor.slowdowns())
        if low <= 0:
            # A floor that costs nothing measurable (preload's counter) divides nothing.
            row.over_floor_note = (f"floor not above noise (its slowdown's interval "
                                   f"[{low:+.1%}, {high:+.1%}] includes 0)")
            continue
        bare = np.array(row.samples_bare_ns_per_move)
        mine = np.array(row.samples_observed_ns_per_move) - bare
        theirs = np.array(floor.samples_observed_ns_per_move) - bare
        samples = (mine / theirs).tolist()
        ratio, low, high = median_interval(samples)
        row.over_floor, row.over_floor_ci, row.over_floor_samples = ratio, [low, high], samples


def methods_section(names) -> dict:
    """What the tables need to know of each method named, from its class (see Observer.describe)."""
    return {name: REGISTRY[name].describe() for name in sorted(set(names)) if name in REGISTRY}


def label_of(method: str, options: dict | None) -> str:
    """A variant's label as the reading side makes it, from the registry's declarations."""
    return method_label(method, options, methods_section([method]))


def make_document(runs: list[Row], skipped: list[dict] | None = None, meta: dict | None = None,
                  **sections: list[dict]) -> Document:
    """A document of today's format from what was measured. sections: any of SECTIONS
    (comparisons, bystanders, ceilings ...), each a list of dicts. The methods section
    describes every method any of them names; two rows of one key are refused here."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown results sections {sorted(unknown)}")
    named = [row.method for row in runs] + [entry["method"] for part in [skipped or [], *sections.values()]
                                            for entry in part or [] if isinstance(entry, dict) and "method" in entry]
    document = Document(metadata=meta or metadata(), methods=methods_section(named), runs=list(runs),
                        skipped=skipped or [], sections={name: sections.get(name) or [] for name in SECTIONS})
    document.keyed_rows()
    return document


def document_of(found: dict) -> Document:
    """A sweep's sections (bench/sweep.py's answer) as a document."""
    found = dict(found)
    return make_document(found.pop("runs"), found.pop("skipped"), found.pop("meta"), **found)


def write_json(path: str | Path, runs: list[Row], skipped: list[dict] | None = None,
               meta: dict | None = None, **sections: list[dict]) -> None:
    """make_document(...), written atomically."""
    make_document(runs, skipped, meta, **sections).write(path)


load_document = Document.load


def upgrade_document(data: dict, plan_groups, primary_groups: dict[str, str]) -> Document:
    """An older results document (format 2 to 5, as JSON) in today's format. What can be
    converted is; what was not measured stays missing (None, never zero); the metadata says
    it was converted, and from which format: its rows keep the definitions they were measured
    under (format 4 counted the target's whole CPU and the observer's teardown, and no whole
    cost), which compare does not set against today's. What the old file did not record comes
    from today's code: the methods' descriptions (format 2 kept none) and option labels, and
    each row's group, found by matching the rows of each stretch of one workload against the
    sweep plan's groups (plan_groups: (name, workload, lineup) of every group a sweep runs); a
    stretch that matches none is named by its position."""
    data = json.loads(json.dumps(data))  # a copy
    version = data.get("format")
    if version not in (2, 3, 4, 5):
        raise ResultsError(f"results format {version!r} cannot be upgraded (2 to 5 can)")
    if version == 2:
        for row in data["runs"]:
            ratio, low, high = median_interval(per_repeat_ratios(row["samples_observed_ns_per_move"],
                                                                 row["samples_bare_ns_per_move"]))
            row.update(overhead_ratio=ratio, overhead_ratio_ci=[low, high], placement="free",
                       latency_from="mechanism")  # format 2 measured latency from the mechanism's stamp
            row.pop("target_slowdown_pct", None)
            if row.get("self_check") is not None:
                row["self_checks"] = [row.pop("self_check")]
            row.pop("self_check", None)
            row["unstable"] = [] if row.get("paced") else instability(row["samples_bare_ns_per_move"], ratio, low, high)
        for probe in data.get("sigkill", []):
            left = [f"{probe.pop(name)} {what}" for name, what in (("bpf_programs_left", "BPF programs"),
                                                                    ("segments_left", "segments")) if name in probe]
            probe["left_behind"] = [entry for entry in left if not entry.startswith("0 ")]
    defaults = Row().to_json()
    rows = []
    groups = [row["group"] for row in data["runs"]] if version >= 4 else _groups_of(data["runs"], plan_groups)
    for row, group in zip(data["runs"], groups):
        row["group"] = group
        row["rate"] = float(row["rate"])
        for name, default in defaults.items():
            if name not in row:
                # missing means not measured: None, an empty list, or the meaning format 2 had
                row[name] = default if default in (None, [], {}, "full") else None
        rows.append(Row.from_json(row, f"row {len(rows)}"))
    add_floor_ratios(rows)  # today's rule: nothing divided by a floor that is noise
    named = [row.method for row in rows] + [entry["method"] for entry in data.get("skipped", []) if "method" in entry]
    methods = data.get("methods") or methods_section(named)
    for name, info in methods.items():
        if name in REGISTRY:
            info["option_labels"] = REGISTRY[name].describe()["option_labels"]
    meta = data["metadata"]
    meta.setdefault("machine_id", machine_id(meta))
    meta["converted_from_format"] = meta.get("converted_from_format") or version
    if meta.get("profile") == "full":
        meta.setdefault("primary_groups", primary_groups)
    return Document(metadata=meta, methods=methods, runs=rows, skipped=data.get("skipped") or [],
                    sections={name: data.get(name) or [] for name in SECTIONS})


def _groups_of(rows: list[dict], plan_groups) -> list[str]:
    """The group name of each row of an older document, in order: rows were written group by
    group, so a group is a stretch of rows of one workload in which no variant repeats, and a
    stretch takes the name of the one plan group of that workload whose lineup holds it."""
    def workload(row):
        return (row["target"], row["moves"], float(row["rate"]), row["goroutines"], row.get("placement", "free"))

    def variant(method, options):
        return method, tuple(sorted(options.items()))

    stretches: list[list[dict]] = []
    for row in rows:
        current = stretches[-1] if stretches else None
        if (current is None or workload(current[0]) != workload(row)
                or variant(row["method"], row["options"]) in {variant(r["method"], r["options"]) for r in current}):
            stretches.append([row])
        else:
            current.append(row)
    names = []
    for position, stretch in enumerate(stretches):
        lineup = {variant(r["method"], r["options"]) for r in stretch}
        # A group's rows are its lineup, less the methods that could not run there.
        found = [name for name, w, methods in plan_groups
                 if (w.target, w.moves, float(w.rate), w.goroutines) == workload(stretch[0])[:4]
                 and w.placement in ("free", workload(stretch[0])[4])
                 and lineup <= {variant(m, o) for m, o in methods}]
        names += [found[0] if len(found) == 1 else f"group {position + 1}"] * len(stretch)
    return names
