"""The sweep plan is derived from what techniques declare: a technique added as one file in
methods/ is measured, joins every probe that applies to it, the headline and the gate's rows,
with no edit anywhere else; `tapbench sweep --plan` shows the plan without measuring."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from bench import plan
from bench.probes import PROBES
from bench.run.targets import ROOT
from methods import REGISTRY

TWIN = textwrap.dedent('''
    """A drop-in technique: preload's hook under another name, declaring nothing else."""
    from methods.preload import PreloadObserver


    class PreloadTwinObserver(PreloadObserver):
        method = "preload_twin"
''')


def test_every_probe_applies_to_every_technique_it_can_run_against():
    attach = next(p for p in PROBES if p.name == "attach")
    assert {m for m, _ in attach.lineup()} == {name for name, cls in REGISTRY.items() if cls.can_attach and not cls.baseline}
    # a technique's attach options are part of what an attaching probe runs
    assert ("ptrace", {"strategy": "step", "exitkill": False}) in attach.lineup()
    ceilings = next(p for p in PROBES if p.name == "ceilings")
    assert {m for m, _ in ceilings.lineup()} == {name for name, cls in REGISTRY.items() if not cls.baseline}


def test_a_declared_primary_group_counts_only_where_that_group_measures_the_technique():
    groups = plan.primary_groups()
    assert groups["ebpf"] == "ebpf" and groups["zpoline"] == "zpoline on cgo"
    assert all(any(g.name == group and method in {m for m, _ in g.lineup} for g in plan.full_groups())
               for method, group in groups.items())


def test_the_gate_measures_every_technique_of_ours_and_no_peer():
    rows = {method for method, _, _, _ in plan.gate_rows()}
    assert rows == {name for name, cls in REGISTRY.items() if not cls.baseline and not cls.reference_peer}


@pytest.fixture
def tree_with_a_twin(tmp_path):
    """The project's code copied beside its built parts (binaries, hooks, BPF objects, linked),
    with one new file in methods/."""
    for folder in ("bench", "methods"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for built in ("gotargets", "preload", "bpf", "results"):
        (tmp_path / built).symlink_to(ROOT / built)
    (tmp_path / "methods" / "preload_twin.py").write_text(TWIN)
    return tmp_path


def in_tree(tree, *argv, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=tree, timeout=timeout,
                          env=os.environ | {"PYTHONPATH": str(tree)})


def test_a_technique_dropped_into_methods_joins_the_sweep_the_probes_the_headline_and_the_gate(tree_with_a_twin):
    tree = tree_with_a_twin
    shown = in_tree(tree, "-m", "bench", "sweep", "--plan")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    # a group of its own beside its floor, and a live run
    own = lines.index("group 'preload_twin': libc, 200000 moves, 1 goroutine(s), shared")
    assert lines[own + 1:own + 3] == ["  preload_twin (ring_slots=1048576)",
                                      "  preload_twin (ring_slots=1048576, capture=count)"]
    assert any(line.startswith("group 'preload_twin live'") for line in lines)
    assert "preload_twin in 'preload_twin'" in shown.stdout  # its headline row's group
    for probe in ("ceilings", "privileges", "sigkill", "hostile", "duels", "bystanders"):
        line = next(line for line in lines if line.startswith(f"probe {probe} ("))
        assert "preload_twin (ring_slots=1048576)" in line, line
    attach = next(line for line in lines if line.startswith("probe attach ("))
    assert "preload_twin" not in attach  # LD_PRELOAD cannot attach
    gate = in_tree(tree, "-c", "from bench.gate.ab import ROWS; print(ROWS)")
    assert "('preload_twin', {}, 'libc', 50000)" in gate.stdout, gate.stderr
    # it runs, and is verified
    out = tree / "twin.json"
    run = in_tree(tree, "-m", "bench", "run", "--method", "preload_twin", "--moves", "2000", "--repeats", "1",
                  "--json", str(out))
    assert run.returncode == 0 and "2000/2000 exact" in run.stdout, run.stdout + run.stderr
    # and the headline shows it from its group, by the same rule as every other technique
    headline = in_tree(tree, "-c", textwrap.dedent(f'''
        import dataclasses, json
        from bench import plan
        from bench.document.headline import headline_json
        from bench.document.rows import Document
        document = Document.load({str(out)!r})
        document.metadata["primary_groups"] = plan.primary_groups()
        document.runs = [dataclasses.replace(row, group="preload_twin", placement="split") for row in document.runs]
        print(json.dumps(next(t for t in headline_json(document)["techniques"] if t["name"] == "preload_twin")))
    '''))
    entry = json.loads(headline.stdout)
    assert entry["row"]["group"] == "preload_twin" and entry["cells"]["overhead_ns"]["value"] is not None
    # preload's claims are the article's about preload: the twin inherits none of them
    assert entry["article_name"] is None and entry["claims"] == []


def test_the_plan_measures_nothing_and_changes_nothing_on_the_machine(running_opponent):
    """--plan runs none of the clean-up run and watch make first: a stopped opponent stays."""
    from tests.conftest import wait_for_state

    process, _ = running_opponent("-moves", "10")
    os.kill(process.pid, signal.SIGSTOP)
    wait_for_state(process.pid, "T")
    shown = subprocess.run([sys.executable, "-m", "bench", "sweep", "--plan"], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "cleanup:" not in shown.stderr and wait_for_state(process.pid, "T", timeout_s=0) == "T"


def test_a_variant_whose_probe_fails_is_reported_and_the_others_are_measured():
    from bench.probes._probe import Context

    def measure(method, options):
        if method == "ptrace":
            raise TimeoutError("the watch did not end")
        return {"method": method}

    context = Context(repeats=1, placements=("shared",))
    found = context.each([("ebpf", {}), ("ptrace", {"strategy": "step"}), ("strace", {})], "attaching {} {}", measure)
    assert [entry["method"] for entry in found] == ["ebpf", "strace"]
    assert context.skipped == [{"method": "ptrace", "options": {"strategy": "step"},
                                "reason": "attaching of ptrace {'strategy': 'step'} failed: TimeoutError: "
                                          "the watch did not end"}]
