"""Results from many machines: stored per machine, merged from elsewhere, compared like with like."""
import json
import subprocess
import sys

import pytest

from bench.machine import machine_id
from bench.document.rows import Document
from bench.run.results import RESULTS_FORMAT, ResultsError
from bench.store import NOT_RESULTS, baseline_for, merge, store_full
from bench.run.targets import ROOT

AMD = ROOT / "results" / "machines" / "amd-2cpu-6.18-87fa20"


def document(cpu="Intel(R) Xeon(R) Processor", date="2026-11-27T10:00:00+00:00", profile="full"):
    meta = {"date": date, "kernel": "6.18.44", "cpu_model": cpu, "cpu_count": 2, "lockdown": "integrity",
            "hypervisor": "KVM", "preemption": "PREEMPT_DYNAMIC", "mitigations": {}, "profile": profile,
            "commit": "abc"}
    meta["machine_id"] = machine_id(meta)
    return {"format": RESULTS_FORMAT, "metadata": meta, "methods": {}, "runs": [], "skipped": [],
            "comparisons": [], "ceilings": []}


def test_a_machine_id_is_readable_and_changes_with_the_machine():
    intel, amd = document()["metadata"], document(cpu="AMD EPYC")["metadata"]
    assert intel["machine_id"].startswith("intel-2cpu-6.18-") and amd["machine_id"].startswith("amd-2cpu-6.18-")
    assert machine_id(intel | {"hypervisor": "none"}) != intel["machine_id"]


def test_the_stored_older_sweep_was_converted_not_zeroed():
    old = Document.load(AMD / "latest.json")
    assert old.format == RESULTS_FORMAT and old.metadata["converted_from_format"] == 2
    row = old.runs[0]
    assert row.placement == "free" and row.latency_from == "mechanism"  # what it was
    assert row.batch_ns_max is None and row.harness_cpu_ns_per_move is None  # not measured: missing, not 0
    low, high = row.overhead_ratio_ci
    assert low <= row.overhead_ratio <= high
    assert all("left_behind" in probe for probe in old.section("sigkill"))


def test_an_older_format_is_refused_with_the_way_to_convert_it_and_upgrade_converts_it(tmp_path):
    path = tmp_path / "old.json"
    row = {name: value for name, value in Document.load(AMD / "latest.json").runs[0].to_json().items()
           if name not in ("group", "over_floor", "over_floor_ci", "over_floor_samples", "over_floor_note",
                           "target_user", "cpu_cost_ns_per_event", "cpu_cost_ci", "samples_cpu_cost_ns_per_event",
                           "target_extra_cpu_ns_per_move", "target_cpu_ns_per_move_bare", "observer_setup_cpu_ms",
                           "observer_teardown_cpu_ms")}
    path.write_text(json.dumps({"format": 3, "metadata": {"date": "d", "profile": "full"}, "methods": {},
                                "runs": [row, row | {"moves": row["moves"] + 1}], "skipped": []}))
    with pytest.raises(ResultsError, match=r"format 3; convert it once with `tapbench upgrade"):
        Document.load(path)
    result = subprocess.run([sys.executable, "-m", "bench", "upgrade", str(path)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0 and f"results format 3 -> {RESULTS_FORMAT}" in result.stdout, result.stderr
    upgraded = Document.load(path)
    assert upgraded.metadata["converted_from_format"] == 3 and "primary_groups" in upgraded.metadata
    # Two rows that a format-3 reader would have keyed alike are two rows, each with a group.
    assert len({r.key for r in upgraded.runs}) == 2 and all(r.group for r in upgraded.runs)


def test_merge_stores_each_file_under_its_machine_and_refuses_unknown_files(tmp_path):
    results = tmp_path / "results"
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "intel.json").write_text(json.dumps(document()))
    (artifacts / "amd.json").write_text(json.dumps(document(cpu="AMD EPYC")))
    imported = merge(results, [str(artifacts)])
    assert len(imported) == 2
    for name in ("intel", "amd"):
        folder = next((results / "machines").glob(f"{name}-*"))
        assert (folder / "latest.json").exists() and (folder / "machine.json").exists()
    # An older sweep of a machine already stored goes behind it, as previous.json.
    (artifacts / "intel.json").write_text(json.dumps(document(date="2026-11-01T00:00:00+00:00")))
    merge(results, [str(artifacts / "intel.json")])
    folder = next((results / "machines").glob("intel-*"))
    assert Document.load(folder / "latest.json").metadata["date"].startswith("2026-11-27")
    assert Document.load(folder / "previous.json").metadata["date"].startswith("2026-11-01")
    (artifacts / "junk.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultsError, match="is not a tapbench results file"):
        merge(results, [str(artifacts / "junk.json")])
    result = subprocess.run([sys.executable, "-m", "bench", "merge", "--results", str(results),
                             str(artifacts / "junk.json")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("ERROR: ")


def test_the_gate_takes_its_own_machines_baseline_and_says_when_it_falls_back(tmp_path):
    results = tmp_path / "results"
    found = document(profile="quick")
    store_full(results, Document.from_json(found, "found"))
    other = document(cpu="AMD EPYC", profile="quick")
    folder = results / "machines" / other["metadata"]["machine_id"]
    folder.mkdir(parents=True)
    (folder / "baseline.json").write_text(json.dumps(other))
    path, fallback = baseline_for(results, found["metadata"])
    assert path == folder / "baseline.json" and "has no baseline" in fallback
    own = results / "machines" / found["metadata"]["machine_id"] / "baseline.json"
    own.write_text(json.dumps(found))
    assert baseline_for(results, found["metadata"]) == (own, None)


def test_the_cross_machine_table_has_one_column_per_machine():
    from bench.document.as_markdown import section_lines
    from bench.document.sections import machines

    intel, amd = document(), document(cpu="AMD EPYC")
    intel["comparisons"] = [{"method": "ebpf", "baseline": "bpftrace", "workload": "w", "ratio": 0.1,
                             "samples": [0.1, 0.1, 0.1]}]
    amd["ceilings"] = [{"method": "ebpf", "options": {}, "target": "go", "placement": "shared", "ceiling": 5e5,
                        "first_failure": 5.5e5, "limited_by": "loss", "unobserved_max": 1e6, "probes": []}]
    intel, amd = Document.from_json(intel, "intel"), Document.from_json(amd, "amd")
    text = "\n".join(section_lines(machines.section({intel.metadata["machine_id"]: intel,
                                                      amd.metadata["machine_id"]: amd}, intel.metadata["machine_id"])))
    assert "| ebpf     | bpftrace | w          | 0.10" in text and "| -" in text  # missing, not zero
    assert "500,000" in text


def test_merge_refuses_a_result_measured_with_uncommitted_changes(tmp_path):
    dirty = document()
    dirty["metadata"] |= {"commit": "abc-dirty", "dirty": True}
    path = tmp_path / "dirty.json"
    path.write_text(json.dumps(dirty))
    with pytest.raises(ResultsError, match="uncommitted changes .* measure again from a clean commit"):
        merge(tmp_path / "results", [str(path)])
    assert not (tmp_path / "results" / "machines").exists()


def test_every_stored_result_comes_from_a_clean_commit():
    stored = [p for p in (ROOT / "results" / "machines").rglob("*.json") if p.name not in NOT_RESULTS]
    assert stored
    for path in stored:
        meta = Document.load(path).metadata
        assert not meta.get("dirty") and not str(meta.get("commit", "")).endswith("-dirty"), path
