"""Results JSON: machine metadata once at the top, one flat row per (method, workload)."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.machine import fingerprint, machine_id
from bench.runner import Execution
from bench.stats import instability, median_interval, per_repeat_ratios
from bench.targets import ROOT, Workload
from methods import REGISTRY

# Results format version. History:
#   1  metadata + runs; each run flat keys (method, target, expected, captured, lost, phantom,
#      in_order, ns_per_move_bare, ns_per_move_observed, overhead_ns, latency_*) + raw samples.
#   2  adds per run target_slowdown_pct, observer_cpu_ns_per_move, latency_cdf_ns; sections
#      ceilings, attach, privileges, sigkill. A reader treats a missing key as "not measured".
#   3  adds the `methods` section (each method's description, claims, attach ability, loss
#      source, targets, whether it is the baseline or a reference peer), so tables need no
#      code; run `mechanism` facts sit under the method's name; sigkill's bpf_programs_left and
#      segments_left become `left_behind` (a list); metadata loses the fixed `note`.
#      Runs: overhead_ratio is the median of per-repeat ratios (bench/stats.py) with
#      overhead_ratio_ci and `unstable` reasons; target_slowdown_pct is gone (it was the same
#      figure); latency_* is from the opponent's own stamp ("latency_from": "target"), the
#      mechanism's stamp becomes mechanism_latency_*; observer CPU has the target's exact usage
#      and the harness's cost taken off; self_check becomes self_checks (every repeat).
RESULTS_FORMAT = 3


class ResultsError(Exception):
    pass


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


def same_code(old_commit: str | None, new_commit: str | None, repository: Path = ROOT) -> bool:
    """Whether two measured commits differ only in results/ (a commit that stores results
    changes no code): asked of git, so False when either is unknown here or was dirty."""
    if not old_commit or not new_commit or "dirty" in old_commit or "dirty" in new_commit:
        return False
    try:
        out = subprocess.run(["git", "diff", "--quiet", old_commit, new_commit, "--", ".", ":(exclude)results"],
                             capture_output=True, timeout=10, cwd=repository)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


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
              observed: list[Execution]) -> dict:
    """One flat row: verified capture summed over repeats, medians with intervals, raw samples."""
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
    # What the harness's own loop costs with nothing to observe (the bare runs): not the
    # observer's, so taken off its CPU.
    harness_cpu = float(np.median([e.observer_cpu_ns / max(e.truth.written, 1) for e in bare]))
    observer_cpu = float(np.median([e.observer_cpu_ns / max(e.truth.written, 1) for e in observed]))
    row = {
        "method": method,
        "options": options,
        "target": workload.target,
        "moves": workload.moves,
        "rate": workload.rate,
        "goroutines": workload.goroutines,
        "seed": workload.seed,
        "placement": workload.placement,
        # "count": a floor (the mechanism counting only), checked by its count, not its events
        "capture": options.get("capture") or "full",
        "repeats": len(observed),
        "expected": sum(e.truth.written for e in observed),
        "captured": sum(v.captured for v in verdicts) if verdicts else None,
        "lost": sum(v.lost for v in verdicts) if verdicts else None,
        "lost_reported": sum(e.lost_reported for e in observed),
        "phantom": sum(v.phantom for v in verdicts) if verdicts else None,
        "in_order": all(v.in_order for v in verdicts) if verdicts else None,
        "exact": all(v.exact for v in verdicts) if verdicts and not not_applicable else None,
        "not_applicable": not_applicable,
        "ns_per_move_bare": float(np.median(bare_ns)),
        "ns_per_move_observed": float(np.median(observed_ns)),
        "overhead_ns": float(np.median(paired)),
        "overhead_iqr_ns": [float(x) for x in np.percentile(paired, [25, 75])],
        # The target's slowdown, (observed − bare) / bare, median of the repeats (bench/stats.py).
        "overhead_ratio": ratio,
        "overhead_ratio_ci": [ratio_low, ratio_high],
        "unstable": instability(bare_ns, ratio, ratio_low, ratio_high) if not workload.rate else [],
        "ready_ms": float(np.median([e.ready_ns for e in observed]) / 1e6),
        # A bcc backend compiles at its first start in a process and loads that bytecode at later
        # ones (methods/bpf_loader.py): its two kinds of start apart. Empty for other methods.
        **{f"ready_ms_{kind}": [e.ready_ns / 1e6 for e in observed
                                if e.mechanism.get(method, {}).get("compiled_at_start") is compiled]
           for kind, compiled in (("compiled", True), ("reused", False))},
        # The observer's own CPU (its process tree; the target's exact usage and the harness's
        # cost in the bare runs taken off) per move written.
        "observer_cpu_ns_per_move": observer_cpu - harness_cpu if observed is not bare else observer_cpu,
        "harness_cpu_ns_per_move": harness_cpu,
        "target_cpu_ns_per_move": float(np.median([e.target_cpu_ns / max(e.truth.written, 1) for e in observed])),
        # On a paced run the wall time is the schedule's, so overhead shows as lag instead.
        "paced": workload.rate > 0,
        "lag_end_ns_max": max(max(w["lag_end_ns"] for w in e.truth.report["writers"]) for e in observed),
        # Latency: from the opponent's stamp just before the write() to Python receiving the
        # move, for the stamped moves; the mechanism's own stamp to Python as a breakdown.
        "latency_from": "target",
        "latency_samples": int(latencies.size),
        **percentiles(latencies),
        "latency_cdf_ns": _cdf(latencies),
        **percentiles(by_mechanism, "mechanism_latency"),
        # Python stamps a batch's arrival once; an event is handled at most this long after.
        "batch_ns_max": max((e.mechanism.get("batch_ns_max", 0) for e in observed), default=0),
        "samples_bare_ns_per_move": bare_ns.tolist(),
        "samples_observed_ns_per_move": observed_ns.tolist(),
        "verdicts": [v.as_dict() for v in verdicts],
        "mechanism": [e.mechanism for e in observed],
        # What the opponent noticed, at start, in every repeat.
        "self_checks": [e.truth.report["self_check_start"] for e in observed],
    }
    return row


SECTIONS = ("comparisons", "bystanders", "ceilings", "attach", "privileges", "sigkill", "duels", "exec", "bpf_profile", "latency_floor")


def method_label(row: dict) -> str:
    """'ebpf (raw, poll)', 'strace (seccomp-bpf)': the choices that tell variants apart."""
    options = row.get("options") or {}
    detail = [value for value in options.values() if isinstance(value, str)]
    detail += [name.replace("_", "-") for name, value in options.items() if value is True]
    # A numeric option names its variant only where the backend gives it a label (sizes and
    # periods stay out).
    specs = REGISTRY[row["method"]].cli_options if row["method"] in REGISTRY else {}
    detail += [specs[name]["label"].format(value) for name, value in options.items()
               if value and "label" in specs.get(name, {})]
    return f"{row['method']} ({', '.join(detail)})" if detail else row["method"]


def row_key(row: dict) -> tuple:
    """What makes two rows the same measurement in two results files."""
    options = tuple(sorted((row.get("options") or {}).items()))
    return (row["method"], options, row["target"], row["goroutines"], row["moves"], row["rate"],
            row.get("placement", "free"))


def methods_section(names) -> dict:
    """What the tables need to know of each method named, from its class (see Observer.describe)."""
    return {name: REGISTRY[name].describe() for name in sorted(set(names)) if name in REGISTRY}


def write_json(path: str | Path, runs: list[dict], skipped: list[dict] | None = None,
               meta: dict | None = None, **sections: list[dict]) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one.
    sections: any of SECTIONS (comparisons, bystanders, ceilings ...), each a list of dicts.
    The methods section describes every method any of them names."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown results sections {sorted(unknown)}")
    path = Path(path)
    named = [entry["method"] for part in [runs, skipped or [], *sections.values()] for entry in part or []
             if isinstance(entry, dict) and "method" in entry]
    document = {"format": RESULTS_FORMAT, "metadata": meta or metadata(),
                "methods": methods_section(named), "runs": runs,
                "skipped": skipped or []} | {name: sections.get(name) or [] for name in SECTIONS}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_json(path: str | Path) -> dict:
    try:
        with open(path) as f:
            document = json.load(f)
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not JSON ({error})") from None
    version = document.get("format") if isinstance(document, dict) else None
    if not isinstance(version, int):
        raise ResultsError(f"{path} is not a tapbench results file")
    if version > RESULTS_FORMAT:
        raise ResultsError(f"{path} has results format {version}, newer than this tapbench "
                           f"({RESULTS_FORMAT}): update tapbench")
    if version < 2 or not isinstance(document.get("metadata"), dict) or not isinstance(document.get("runs"), list):
        raise ResultsError(f"{path} has results format {version}, older than tapbench can read (2)")
    return upgrade(document) if version < RESULTS_FORMAT else document


def upgrade(document: dict) -> dict:
    """Format 2 to 3, in memory: what can be converted is, what was not measured stays missing
    (never zero), and the document says it was converted."""
    document = json.loads(json.dumps(document))  # a copy
    for row in document["runs"]:
        ratio, low, high = median_interval(per_repeat_ratios(row["samples_observed_ns_per_move"],
                                                             row["samples_bare_ns_per_move"]))
        row.update(overhead_ratio=ratio, overhead_ratio_ci=[low, high], placement="free",
                   # format 2 measured latency from the mechanism's own stamp
                   latency_from="mechanism")
        row.pop("target_slowdown_pct", None)
        if row.get("self_check") is not None:
            row["self_checks"] = [row.pop("self_check")]
        row["unstable"] = [] if row.get("paced") else instability(row["samples_bare_ns_per_move"], ratio, low, high)
    for probe in document.get("sigkill", []):
        left = [f"{probe.pop(name)} {what}" for name, what in (("bpf_programs_left", "BPF programs"),
                                                                ("segments_left", "segments")) if name in probe]
        probe["left_behind"] = [entry for entry in left if not entry.startswith("0 ")]
    named = [entry["method"] for part in (document["runs"], document.get("skipped", []))
             for entry in part if "method" in entry]
    # Format 2 kept no description of the methods: today's, for the methods it names.
    document["methods"] = document.get("methods") or methods_section(named)
    meta = document["metadata"]
    meta.setdefault("machine_id", machine_id(meta))
    meta["converted_from_format"] = document["format"]
    document["format"] = RESULTS_FORMAT
    return document
