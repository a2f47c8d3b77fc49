"""The results document and its rows, typed: every field of a measured row declared once here,
with its unit and meaning, and every document checked against them when it is read.

A results file is JSON: metadata shared by all runs hoisted to the top, the `methods` section
(what each method is, so no reader needs the code that measured it), the rows, then the
probe sections (ceilings, attach, privileges ...). The code that measures writes rows as
Row.to_json(); everything that reads them (report, headline, plots, compare) gets Rows from
Document.load(), so a misspelt or missing key fails when the file is read, with its name, not
as a KeyError in the middle of a table.
"""
from __future__ import annotations

import json
import os
import tempfile
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from bench.stats import median_interval, per_repeat_ratios

# Results format version. History:
#   1  metadata + runs; each run flat keys (method, target, expected, captured, lost, phantom,
#      in_order, ns_per_move_bare, ns_per_move_observed, overhead_ns, latency_*) + raw samples.
#   2  adds per run target_slowdown_pct, observer_cpu_ns_per_move, latency_cdf_ns; sections
#      ceilings, attach, privileges, sigkill.
#   3  adds the `methods` section (description, claims, attach ability, loss source, targets,
#      baseline, reference peer); overhead_ratio becomes the median of per-repeat ratios with
#      overhead_ratio_ci and `unstable`; latency_* from the opponent's own stamp
#      ("latency_from": "target"); sigkill's `left_behind`; self_checks of every repeat.
#   4  rows are Rows (this module): every field present, checked on reading. A row's `group`
#      (the sweep group it ran in, beside its own bare runs) is part of its identity, so two
#      rows of one configuration in two groups no longer collide. `methods` entries carry
#      `option_labels` (how a numeric option names its variant), so labels need no code;
#      metadata carries `primary_groups` (the group each technique's headline row comes from)
#      for a sweep. Rows record who the target ran as (`target_user`).
#   5  the whole cost of watching: cpu_cost_ns_per_event (the target's extra CPU over its move
#      loop, as the opponent reports it, plus the observer's CPU from release until the last
#      event was handed over, each against the same repeat's bare run), with its interval and
#      samples; target_cpu_ns_per_move becomes the loop's (it was the whole process's, start-up
#      and report included) with the bare runs' beside it; observer_cpu_ns_per_move leaves
#      set-up and teardown out (they are observer_setup_cpu_ms and observer_teardown_cpu_ms);
#      a ceiling says what limits it. Rows of files converted from older formats keep their old
#      definitions: compare refuses to set them against rows measured as format 5.
#   6  the live latency's spread: latency_p99_per_repeat_ns (each repeat's own p99), from which
#      the p99 gets an interval; sections: a ceiling keeps every search of it (`searches`), the
#      pipe floor its repeats, a privilege probe the call the kernel refused, attach its first
#      starts in new processes. Files of format 5 convert with the new row field empty.
# Older files are converted once with `tapbench upgrade FILE` (which needs the code of today,
# for what the old file did not record); this side reads the current format only.
RESULTS_FORMAT = 6
# The first format whose rows measure CPU as format 5 defines it: rows of older sweeps, even
# converted, are not compared with newer ones on it (bench/document/compare.py).
COST_DEFINED_IN = 5


class ResultsError(Exception):
    """A results file that cannot be read as one: the message names the file and the fault."""


class DuplicateRow(ResultsError):
    """Two rows of one document with the same identity: pairing them would silently keep one."""


@dataclass
class Row:
    """One measured configuration: a method with its options on one workload, in one placement,
    measured `repeats` times against bare runs of the same workload, interleaved. Times are
    per move written (ns), medians over the repeats unless said otherwise."""

    # --- identity (Row.key): what makes two rows the same measurement in two documents ---
    group: str = "run"  # the sweep group it ran in; its bare runs are that group's
    method: str = ""
    options: dict = field(default_factory=dict)  # the backend's options as run (capture included)
    target: str = "go"  # the opponent build: go, cgo or libc
    moves: int = 0  # moves per run, over all writers
    rate: float = 0.0  # offered moves/s; 0 = flat out
    goroutines: int = 1  # concurrent writers
    placement: str = "free"  # shared, split or free (bench/run/placement.py)
    # --- the workload, beyond its identity ---
    seed: int = 1
    capture: str = "full"  # "count": a floor, the mechanism only counting (checked by count)
    paced: bool = False  # rate > 0: wall time is the schedule's; overhead shows as lag instead
    repeats: int = 0  # observed runs (each paired with one bare run)
    target_user: str | None = None  # who the target ran as; None: not recorded (older results)
    # --- capture, verified against the opponent's ground truth, summed over the repeats ---
    expected: int = 0  # moves written
    captured: int | None = None  # distinct generator moves seen with the right kind (None: not observed)
    lost: int | None = None  # expected − captured
    lost_reported: int = 0  # what the mechanism itself counted as dropped
    phantom: int | None = None  # events that are not a first sighting of a generator move
    in_order: bool | None = None  # every writer's moves arrived in the order written
    exact: bool | None = None  # all of the above exact; None where not applicable or not observed
    not_applicable: str | None = None  # why the mechanism cannot see this target at all (a finding)
    # --- time per move ---
    ns_per_move_bare: float = 0.0  # median of the bare runs
    ns_per_move_observed: float = 0.0  # median of the observed runs
    overhead_ns: float = 0.0  # median of the paired (observed − bare) differences
    overhead_iqr_ns: list = field(default_factory=list)  # [25th, 75th] percentile of those differences
    overhead_ratio: float = 0.0  # the target's slowdown: median of per-repeat (observed − bare) / bare
    overhead_ratio_ci: list = field(default_factory=list)  # its bootstrap 95 % interval [low, high]
    unstable: list = field(default_factory=list)  # why the slowdown is a rough figure (⚠), in words
    samples_bare_ns_per_move: list = field(default_factory=list)  # every bare run, repeat order
    samples_observed_ns_per_move: list = field(default_factory=list)  # every observed run, same order
    # --- overhead over the floor (the same mechanism only counting, beside it in the group) ---
    over_floor: float | None = None  # median of per-repeat overhead / the floor's overhead
    over_floor_ci: list | None = None  # its bootstrap 95 % interval
    over_floor_samples: list | None = None  # the per-repeat ratios
    over_floor_note: str | None = None  # why there is no ratio (the floor is noise)
    # --- CPU per move written: what watching costs the machine ---
    # The whole cost: per repeat, the target's extra CPU over its move loop (observed − bare, as
    # the kernel accounts it: a BPF program or a hook in the target's context is in it) plus the
    # observer's CPU from release until the last event was handed over (the work after the
    # target's last write included), less what the harness used in the bare run; the median.
    cpu_cost_ns_per_event: float | None = None
    cpu_cost_ci: list | None = None  # its bootstrap 95 % interval
    samples_cpu_cost_ns_per_event: list = field(default_factory=list)  # per repeat
    target_extra_cpu_ns_per_move: float | None = None  # the first part alone (median per repeat)
    observer_cpu_ns_per_move: float | None = None  # the second part alone (median per repeat)
    harness_cpu_ns_per_move: float | None = None  # the harness's own loop in the bare runs
    target_cpu_ns_per_move: float | None = None  # the target's loop CPU, observed (median)
    target_cpu_ns_per_move_bare: float | None = None  # the same in the bare runs
    observer_setup_cpu_ms: float | None = None  # launch to release, per run (median): not per event
    observer_teardown_cpu_ms: float | None = None  # close(), per run (median): not per event
    # --- start-up (ms) ---
    ready_ms: float = 0.0  # from launch to the mechanism in place, median
    ready_ms_compiled: list = field(default_factory=list)  # starts that compiled BPF (bcc)
    ready_ms_reused: list = field(default_factory=list)  # starts that reused compiled bytecode
    # --- latency (ns), over the stamped moves of every repeat ---
    latency_from: str = "target"  # "target": from the opponent's own stamp before its write()
    latency_samples: int | None = None  # None: not recorded (older results)
    latency_p50_ns: int | None = None
    latency_p90_ns: int | None = None
    latency_p99_ns: int | None = None
    latency_p999_ns: int | None = None
    latency_max_ns: int | None = None
    latency_cdf_ns: list = field(default_factory=list)  # [[percentile, ns], ...]
    latency_p99_per_repeat_ns: list = field(default_factory=list)  # each repeat's own p99 (format 6+)
    # breakdown: from the mechanism's own stamp of the write to Python
    mechanism_latency_p50_ns: int | None = None
    mechanism_latency_p90_ns: int | None = None
    mechanism_latency_p99_ns: int | None = None
    mechanism_latency_p999_ns: int | None = None
    mechanism_latency_max_ns: int | None = None
    batch_ns_max: int | None = None  # longest a ring reader took to hand one batch over
    lag_end_ns_max: int = 0  # paced: how far behind its schedule the target ended
    # --- per repeat, as measured ---
    verdicts: list = field(default_factory=list)  # the verifier's verdict of each repeat
    mechanism: list = field(default_factory=list)  # what the mechanism said of itself, each repeat
    self_checks: list = field(default_factory=list)  # what the opponent noticed at start, each repeat

    # The identity fields, in key order.
    IDENTITY: typing.ClassVar[tuple[str, ...]] = ("group", "method", "options", "target", "goroutines",
                                                  "moves", "rate", "placement")

    @property
    def key(self) -> tuple:
        """What makes two rows the same measurement in two results files."""
        return tuple(tuple(sorted(self.options.items())) if name == "options" else getattr(self, name)
                     for name in self.IDENTITY)

    def identity(self) -> dict:
        """The key as a mapping, as headline.json names a row."""
        return {name: getattr(self, name) for name in self.IDENTITY}

    @property
    def overhead_interval_ns(self) -> tuple[float, float, float]:
        """(median, low, high) of the paired (observed − bare) per-move differences, with the
        bootstrap 95 % interval of that median: the overhead in ns and how well it is known."""
        paired = np.subtract(self.samples_observed_ns_per_move[:len(self.samples_bare_ns_per_move)],
                             self.samples_bare_ns_per_move[:len(self.samples_observed_ns_per_move)])
        return median_interval(paired)

    def slowdowns(self) -> np.ndarray:
        """Per-repeat (observed − bare) / bare, each repeat's two runs paired."""
        return per_repeat_ratios(self.samples_observed_ns_per_move, self.samples_bare_ns_per_move)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str = "a row") -> "Row":
        """A Row from its JSON, refusing a missing or unknown field, or one of the wrong type."""
        if not isinstance(data, dict):
            raise ResultsError(f"{where} is not an object")
        names = {f.name for f in fields(cls)}
        missing, unknown = names - set(data), set(data) - names
        if missing or unknown:
            raise ResultsError(f"{where}: " + "; ".join(
                part for part in (f"missing {', '.join(sorted(missing))}" if missing else "",
                                  f"unknown {', '.join(sorted(unknown))}" if unknown else "") if part))
        hints = typing.get_type_hints(cls)
        for name in names:
            if not fits(data[name], hints[name]):
                raise ResultsError(f"{where}: {name} is {data[name]!r}, not {hints[name]}")
        return cls(**data)


def fits(value, hint) -> bool:
    """Whether a JSON value fits a field's annotation (int passes for float, as JSON writes 2.0
    as 2 in some tools; bool never passes for a number)."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    for option in options:
        option = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option in (str, bool, list, dict) and isinstance(value, option):
            return True
    return False


def unique_rows(rows: list[Row], where: str = "the document") -> dict[tuple, Row]:
    """Row key -> row, refusing duplicates: whatever pairs rows by key starts here."""
    found: dict[tuple, Row] = {}
    for row in rows:
        if row.key in found:
            raise DuplicateRow(f"{where} has two rows with the key {row.identity()}: they cannot be told apart")
        found[row.key] = row
    return found


# The probe sections of a document, each a list of entries with at least `method` and `options`.
SECTIONS = ("comparisons", "bystanders", "ceilings", "attach", "privileges", "sigkill", "duels", "exec",
            "bpf_profile", "latency_floor", "hostile", "dependence", "cold_starts")


def method_label(method: str, options: dict | None, methods: dict) -> str:
    """'ebpf (raw, poll)', 'strace (seccomp-bpf)': the choices that tell variants apart. A
    string option names itself, a true flag its name, a numeric option only where the method
    gives it a label in the document (sizes and periods stay out)."""
    options = options or {}
    labels = (methods.get(method) or {}).get("option_labels", {})
    detail = [value for value in options.values() if isinstance(value, str)]
    detail += [name.replace("_", "-") for name, value in options.items() if value is True]
    detail += [labels[name].format(value) for name, value in options.items()
               if value and not isinstance(value, bool) and name in labels]
    return f"{method} ({', '.join(detail)})" if detail else method


def noticed_by_opponent(self_checks: list[dict]) -> list[str]:
    """What the opponent's own self-check at start saw of its observer, in any repeat, in words:
    the one definition the headline and the intrusiveness matrix both use."""
    seen = set()
    for check in self_checks:
        if check.get("tracer_pid"):
            seen.add("TracerPid ≠ 0")
        if check.get("seccomp"):
            seen.add("a seccomp filter")
        if check.get("no_new_privs"):
            seen.add("no_new_privs")
        if check.get("ld_preload"):
            seen.add("LD_PRELOAD set")
        for library in check.get("unexpected_libraries") or []:
            seen.add(f"library {os.path.basename(library)}")
        if check.get("page_zero_mapped"):
            seen.add("a mapping at address 0")
        if (check.get("text_bytes_changed") or 0) > 0:
            seen.add("its own text changed")
    return sorted(seen)


@dataclass
class Document:
    """A results file as read: its rows typed, the rest as written."""

    metadata: dict
    methods: dict[str, dict]
    runs: list[Row]
    skipped: list[dict] = field(default_factory=list)
    sections: dict[str, list[dict]] = field(default_factory=dict)
    format: int = RESULTS_FORMAT

    def section(self, name: str) -> list[dict]:
        if name not in SECTIONS:
            raise KeyError(f"no results section {name!r}")
        return self.sections.get(name) or []

    def info(self, method: str) -> dict:
        """The methods-section entry of a method (empty when the document has none)."""
        return self.methods.get(method) or {}

    def label(self, entry) -> str:
        """A row's or an entry's method and the options that tell its variant (a typed entry
        or, from code that reads sections as written, a dict)."""
        if isinstance(entry, dict):
            return method_label(entry["method"], entry.get("options"), self.methods)
        return method_label(entry.method, entry.options, self.methods)

    def is_baseline(self, entry) -> bool:
        return bool(self.info(entry["method"] if isinstance(entry, dict) else entry.method).get("baseline"))

    @property
    def measured_format(self) -> int:
        """The results format its rows were measured under (a converted file keeps its old
        definitions)."""
        return int(self.metadata.get("converted_from_format") or self.format)

    def keyed_rows(self) -> dict[tuple, Row]:
        return unique_rows(self.runs, f"the sweep of {self.metadata.get('date', 'unknown date')}")

    def to_json(self) -> dict:
        return {"format": self.format, "metadata": self.metadata, "methods": self.methods,
                "runs": [row.to_json() for row in self.runs], "skipped": self.skipped,
                **{name: self.sections.get(name) or [] for name in SECTIONS}}

    def write(self, path: str | Path) -> None:
        """Write atomically: a reader sees the old file or the new one, never half of one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=1)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    @classmethod
    def from_json(cls, data, where: str) -> "Document":
        version = data.get("format") if isinstance(data, dict) else None
        if not isinstance(version, int):
            raise ResultsError(f"{where} is not a tapbench results file")
        if version > RESULTS_FORMAT:
            raise ResultsError(f"{where} has results format {version}, newer than this tapbench "
                               f"({RESULTS_FORMAT}): update tapbench")
        if version < RESULTS_FORMAT:
            raise ResultsError(f"{where} has results format {version}; convert it once with "
                               f"`tapbench upgrade {where}` (this tapbench reads format {RESULTS_FORMAT})")
        for name in ("metadata", "methods"):
            if not isinstance(data.get(name), dict):
                raise ResultsError(f"{where}: `{name}` is missing or not an object")
        if not isinstance(data.get("runs"), list):
            raise ResultsError(f"{where}: `runs` is missing or not a list")
        unknown = set(data) - {"format", "metadata", "methods", "runs", "skipped", *SECTIONS}
        if unknown:
            raise ResultsError(f"{where}: unknown sections {', '.join(sorted(unknown))}")
        runs = [Row.from_json(row, f"{where}, row {index}") for index, row in enumerate(data["runs"])]
        document = cls(metadata=data["metadata"], methods=data["methods"], runs=runs,
                       skipped=data.get("skipped") or [],
                       sections={name: data.get(name) or [] for name in SECTIONS}, format=version)
        document.keyed_rows()  # refuses duplicate keys now, not when something pairs them
        return document

    @classmethod
    def load(cls, path: str | Path) -> "Document":
        return cls.from_json(read_json(path), str(path))


def read_json(path: str | Path):
    """A file's JSON, or a ResultsError that names the file and what is wrong with it."""
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as error:
        raise ResultsError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path} is not JSON ({error})") from None
