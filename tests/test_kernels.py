"""`tapbench kernels`: the verdicts and the section from synthetic matrices, the cells' outcomes,
the kernel catalogue, the feature probes on this kernel, and one real boot of Debian's 5.10."""
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.kernels import catalog, cells, features, judge_kernel_claims, kernel_section, techniques, vm
from bench.kernels.matrix import KERNELS_FORMAT, Matrix, MatrixError
from bench.run.targets import ROOT

ARTICLE = ["ebpf --loader core", "ptrace", "preload"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def column(release: str, outcomes: dict, error: str | None = None, headers_hidden: bool = True) -> dict:
    """A synthetic column: every technique exact unless outcomes says otherwise."""
    made = []
    for label in ("ebpf --loader core", "ptrace", "preload", "sud"):
        outcome = outcomes.get(label, "exact")
        made.append({"technique": label, "method": label.split()[0], "options": {}, "target": "go", "outcome": outcome,
                     "detail": "300/300 exact" if outcome == "exact" else f"{outcome} on {release}", "needs": [],
                     "missing": [], "headers_hidden": headers_hidden and label.startswith("ebpf")})
    return {"name": release, "package": f"linux-image-{release}", "package_version": "1", "series": None,
            "release": release, "headers": None, "accel": "tcg", "emulated": True, "error": error,
            "features": {"btf": {"present": True, "detail": "yes"}, "syscall_user_dispatch": {"present": False,
                                                                                          "detail": "EINVAL"}},
            "cells": [] if error else made}


def matrix(*columns: dict) -> dict:
    return {"format": KERNELS_FORMAT, "commit": "0123456789abcdef", "dirty": False, "date": "2026-12-06T20:00:00+00:00",
            "moves": 300, "cell_timeout_s": 240.0, "techniques": ["ebpf --loader core", "ptrace", "preload", "sud"],
            "kernels": list(columns)}


ALL_EXACT = matrix(column("5.10.0-46-amd64", {}), column("6.1.0-57-amd64", {}), column("6.12.118+deb13-amd64", {}),
                   column("6.18.44-fc", {}))


def verdicts(found: dict) -> dict:
    return {claim: judged["verdict"] for claim, judged in found.items()}


def test_fewer_than_three_kernels_judge_nothing_and_one_that_did_not_boot_does_not_count():
    few = matrix(column("5.10.0-46-amd64", {}), column("6.1.0-57-amd64", {}),
                 column("6.12.1-cloud-amd64", {}, error="Kernel panic - not syncing: VFS: Unable to mount root fs"))
    found = judge_kernel_claims(few)
    assert set(verdicts(found).values()) == {"undetermined"}
    assert "2 kernel(s) measured" in found["Linux 5.15+"]["reason"]


def test_every_technique_exact_everywhere():
    found = judge_kernel_claims(ALL_EXACT)
    assert verdicts(found) == {"ebpf: weak (CO-RE)": "holds", "ptrace: strong (ABI-sensitive)": "does not hold",
                               "preload: medium": "does not hold", "Linux 5.15+": "holds"}
    assert "below it too (5.10.0-46-amd64)" in found["Linux 5.15+"]["reason"]
    assert "no kernel dependence seen" in found["preload: medium"]["reason"]


def test_what_broke_decides():
    broken = copy.deepcopy(ALL_EXACT)
    for index, outcomes in ((0, {"ebpf --loader core": "failed", "ptrace": "failed", "preload": "failed"}),
                            (1, {"preload": "failed"})):
        broken["kernels"][index] = column(broken["kernels"][index]["release"], outcomes)
    found = judge_kernel_claims(broken)
    assert verdicts(found) == {"ebpf: weak (CO-RE)": "does not hold", "ptrace: strong (ABI-sensitive)": "holds",
                               "preload: medium": "holds", "Linux 5.15+": "holds"}
    assert "not on 5.10.0-46-amd64 (failed)" in found["Linux 5.15+"]["reason"]


def test_core_broken_above_5_15_and_preload_broken_everywhere():
    broken = matrix(*(column(c["release"], {"preload": "n/a", "ebpf --loader core": "failed" if i == 2 else "exact"})
                      for i, c in enumerate(ALL_EXACT["kernels"])))
    found = verdicts(judge_kernel_claims(broken))
    assert found["Linux 5.15+"] == "does not hold" and found["ebpf: weak (CO-RE)"] == "does not hold"
    assert found["preload: medium"] == "does not hold"  # broke on every kernel: stronger than medium


def test_5_15_needs_kernels_on_both_sides_and_core_needs_its_headers_hidden():
    above = matrix(*ALL_EXACT["kernels"][1:])
    assert judge_kernel_claims(above)["Linux 5.15+"]["verdict"] == "undetermined"
    with_headers = matrix(*(column(c["release"], {}, headers_hidden=False) for c in ALL_EXACT["kernels"]))
    assert judge_kernel_claims(with_headers)["ebpf: weak (CO-RE)"]["verdict"] == "undetermined"


def test_the_section_shows_every_cell_kernel_and_verdict():
    shown = matrix(*ALL_EXACT["kernels"], column("6.12.1-cloud-amd64", {}, error="Kernel panic: no 9p"))
    shown["kernels"][0]["cells"][3].update(outcome="n/a", detail="no syscall user dispatch (EINVAL) | said so")
    lines = kernel_section(shown, changed_since=["methods/ptrace.py"])
    text = "\n".join(lines)
    assert lines[0] == "## Kernel dependence"
    assert "| `sud` | n/a: no syscall user dispatch (EINVAL) \\| said so | exact |" in text
    assert "not measured" in text and "Kernel panic: no 9p" in text
    assert "changed since:** methods/ptrace.py" in text
    assert '"Linux 5.15+": **holds**' in text
    assert "| Syscall User Dispatch | **no** |" in text


def test_the_file_is_typed_and_versioned(tmp_path):
    typed = Matrix.from_dict(ALL_EXACT)
    path = tmp_path / "kernels.json"
    typed.write(path)
    assert json.loads(path.read_text()) == ALL_EXACT
    with pytest.raises(MatrixError, match="format 0"):
        Matrix.from_dict(ALL_EXACT | {"format": 0})


@pytest.mark.parametrize("returncode, row, error, missing, expected", [
    (0, {"exact": True, "captured": 300, "expected": 300}, "", {}, ("exact", "300/300 exact")),
    (1, {"exact": False, "captured": 299, "expected": 300, "lost": 1, "phantom": 0, "in_order": True}, "", {},
     ("failed", "captured 299/300, 1 lost, 0 phantom")),
    (2, None, "sud unavailable: dispatch could not be switched on", {"syscall_user_dispatch": "EINVAL"},
     ("n/a", "no syscall user dispatch (EINVAL); it said: sud unavailable: dispatch could not be switched on")),
    (2, None, "bpftrace: missing type definitions", {}, ("failed", "bpftrace: missing type definitions")),
    (None, None, "", {"syscall_user_dispatch": "EINVAL"}, ("failed", "no result within 240 s: killed")),
])
def test_a_cell_is_exact_na_or_failed(returncode, row, error, missing, expected):
    assert cells.classify(returncode, row, error, missing, 240) == expected


def test_techniques_are_chosen_by_label_or_method():
    assert [t.label for t in techniques.choose(["ebpf", "ptrace"])] == ["ebpf --loader core", "ebpf (bcc)", "ptrace"]
    with pytest.raises(ValueError, match="unknown technique nope"):
        techniques.choose(["nope"])


class FakeApt:
    def __init__(self, names, fields):
        self._names, self._fields = names, fields

    def names(self, prefix):
        return [name for name in self._names if name.startswith(prefix)]

    def field(self, package, name):
        return self._fields.get((package, name))


def test_an_alias_is_the_newest_package_of_its_series_and_its_headers_come_with_it():
    apt = FakeApt(["linux-image-5.10.0-9-amd64-unsigned", "linux-image-5.10.0-46-amd64-unsigned",
                   "linux-image-5.10.0-46-cloud-amd64-unsigned", "linux-image-5.10.0-46-amd64"],
                  {("linux-headers-5.10.0-46-amd64", "Depends"):
                   "linux-headers-5.10.0-46-common (= 5.10.262-1), linux-kbuild-5.10 (>= 5.10.262-1)"})
    assert catalog.resolve_package(apt, "5.10") == ("linux-image-5.10.0-46-amd64-unsigned", "Debian 11")
    assert catalog.headers_of(apt, "5.10.0-46-amd64") == ["linux-headers-5.10.0-46-amd64",
                                                          "linux-headers-5.10.0-46-common"]
    assert catalog.headers_of(apt, "5.10.0-46-rt-amd64") == []
    with pytest.raises(catalog.KernelNotFound, match="neither an alias"):
        catalog.resolve_package(apt, "linux-image-9.9-amd64")


def test_the_headers_links_are_made_relative_to_where_they_were_unpacked(tmp_path):
    modules = tmp_path / "lib/modules/5.10.0-46-amd64"
    (tmp_path / "usr/src/linux-headers-5.10.0-46-amd64/include").mkdir(parents=True)
    modules.mkdir(parents=True)
    (modules / "build").symlink_to("/usr/src/linux-headers-5.10.0-46-amd64")
    assert catalog.link_headers(modules, tmp_path)
    assert os.readlink(modules / "build") == "../../../usr/src/linux-headers-5.10.0-46-amd64"


def test_only_what_the_guest_would_not_see_is_shown_to_it():
    shown = vm.shown_to_guest([Path("/var/cache/tapbench"), Path("/work/main"), Path("/tmp/ci/main"),
                               Path("/tmp/ci/main/.venv")])
    assert shown == [Path("/tmp/ci/main"), Path("/var/cache/tapbench")]


@needs_root
def test_the_probes_find_what_this_kernel_has_and_put_back_what_they_change():
    min_addr = Path("/proc/sys/vm/mmap_min_addr").read_text()
    found = features.probe_all()
    assert Path("/proc/sys/vm/mmap_min_addr").read_text() == min_addr
    assert set(found) == set(features.PROBES)
    assert all(isinstance(f["present"], bool) and f["detail"] for f in found.values())
    if Path("/sys/kernel/btf/vmlinux").exists():  # the 6.18 machines: every feature is there
        missing = {name: f["detail"] for name, f in found.items() if not f["present"]}
        assert missing == {}


@needs_root
def test_a_cell_that_outlives_its_time_limit_is_killed_with_everything_it_started():
    started = time.monotonic()
    argv = ["run", "--method", "ptrace", "--moves", "100000000", "--rate", "100", "--repeats", "1"]
    returncode, _ = cells.run_forked(argv, without_headers=False, timeout_s=3)
    assert returncode is None and time.monotonic() - started < 60
    # nothing_left_behind (conftest) checks that no process of it is left


@needs_root
@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(), reason="no BTF here: no CO-RE object")
def test_the_core_cell_runs_without_headers_and_bcc_cannot_there():
    found = features.probe_all() | {techniques.HEADERS: features.kernel_headers()}
    core = cells.run_cell(techniques.BY_LABEL["ebpf --loader core"], found, 300, 120)
    assert (core["outcome"], core["headers_hidden"]) == ("exact", True), core
    # the same hiding takes bcc's headers away: what the CO-RE cell did, it did without them
    returncode, stderr = cells.run_forked(cells.cli_argv(techniques.BY_LABEL["ebpf (bcc)"], 300, "/dev/null"), True, 120)
    assert returncode != 0 and "bcc" in stderr.lower(), stderr


@needs_root
@pytest.mark.timeout(900)
def test_debian_5_10_boots_and_the_article_s_techniques_capture_exactly_there(tmp_path):
    """One boot of the oldest kernel (a few minutes under emulation): the CO-RE object without
    headers, ptrace and preload, each exact."""
    reason = vm.missing_tools()
    if reason:
        pytest.skip(reason)
    try:
        catalog.find_kernel("5.10", catalog.DEFAULT_CACHE)
    except catalog.KernelNotFound as error:
        pytest.skip(f"Debian's 5.10 kernel could not be had: {error}")
    out, scratch = tmp_path / "kernels.json", tmp_path / "scratch"
    scratch.mkdir()  # the folder shared with the guest is made here (TMPDIR), to be found empty after
    result = subprocess.run([sys.executable, "-m", "bench.kernels", "--kernel", "5.10", "--no-native", "--method",
                             "ebpf --loader core,ptrace,preload", "--moves", "200", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=840,
                            env=os.environ | {"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr[-2000:]
    (kernel,) = json.loads(out.read_text())["kernels"]
    assert kernel["release"].startswith("5.10.") and kernel["error"] is None
    assert {cell["technique"]: cell["outcome"] for cell in kernel["cells"]} == dict.fromkeys(ARTICLE, "exact")
    assert list(scratch.iterdir()) == []
    guests = subprocess.run(["pgrep", "-f", f"qemu-system.*{scratch}"], capture_output=True, text=True).stdout
    assert guests == ""  # its guest is gone (another run's may be live: it shares no folder with this one)
