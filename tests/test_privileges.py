"""Least privilege, measured: each backend run with a reduced capability bounding set."""
import shutil
import subprocess
import sys

import pytest

from methods._kernel.process import effective_capabilities

pytestmark = pytest.mark.skipif(
    shutil.which("setpriv") is None or len(effective_capabilities()) < 30,
    reason="needs setpriv and a full capability set to drop from (run as root)")


def run_with(bounding_set, *argv):
    """tapbench run as root but holding only `bounding_set` (e.g. '-all,+bpf,+perfmon')."""
    return subprocess.run(["setpriv", f"--bounding-set={bounding_set}", "--inh-caps=-all", "--",
                           sys.executable, "-m", "bench", "run", "--moves", "200", "--repeats", "1",
                           *argv], capture_output=True, text=True)


@pytest.mark.parametrize("hook", ["raw", "tracepoint"])
def test_ebpf_needs_only_cap_bpf_and_cap_perfmon(hook):
    result = run_with("-all,+bpf,+perfmon", "--method", "ebpf", "--hook", hook)
    assert result.returncode == 0, result.stderr
    assert "200/200 exact" in result.stdout


@pytest.mark.parametrize("bounding_set,missing", [("-all", "CAP_BPF and CAP_PERFMON"),
                                                  ("-all,+bpf", "CAP_PERFMON"),
                                                  ("-all,+perfmon", "CAP_BPF")])
def test_ebpf_without_them_names_the_missing_capability(bounding_set, missing):
    result = run_with(bounding_set, "--method", "ebpf")
    assert result.returncode == 2
    assert f"(missing {missing})" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("method,extra", [("ptrace", ["--strategy", "seccomp"]),
                                          ("ptrace", ["--strategy", "step"]),
                                          ("preload", ["--target", "libc"])])
def test_ptrace_and_preload_need_no_capability_on_their_own_child(method, extra):
    result = run_with("-all", "--method", method, *extra)
    assert result.returncode == 0, result.stderr
    assert "200/200 exact" in result.stdout
