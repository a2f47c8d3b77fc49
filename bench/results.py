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


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def lockdown_mode() -> str:
    text = _read("/sys/kernel/security/lockdown")  # e.g. "none [integrity] confidentiality"
    return text[text.find("[") + 1:text.find("]")] if "[" in text else text


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
    """What was measured on: shared by all runs of one invocation."""
    dirty = bool(uncommitted_changes())
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "lockdown": lockdown_mode(),
        "python": platform.python_version(),
        "bcc": package_version("python3-bpfcc"),
        "go": _first_line(["go", "version"]),
        "commit": _first_line(["git", "rev-parse", "HEAD"]) + ("-dirty" if dirty else ""),
        "dirty": dirty,
        "argv": sys.argv[1:],
    }


def _percentiles(samples: np.ndarray, prefix: str = "latency", points=(50, 90, 99, 99.9)) -> dict:
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
        **_percentiles(latencies),
        "latency_cdf_ns": _cdf(latencies),
        **_percentiles(by_mechanism, "mechanism_latency"),
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


SECTIONS = ("comparisons", "bystanders", "ceilings", "attach", "privileges", "sigkill")


def method_label(row: dict) -> str:
    """'ebpf (raw, poll)', 'strace (seccomp-bpf)': the choices that tell variants apart."""
    options = row.get("options") or {}
    detail = [value for value in options.values() if isinstance(value, str)]
    detail += [name.replace("_", "-") for name, value in options.items() if value is True]
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
    return document
