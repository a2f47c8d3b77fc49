"""The eBPF hook loaded the CO-RE way: the object make built, relocated by libbpf, the same
program as bcc's (bpf/write_events.h), exact on every variant, needing neither kernel headers
nor a compiler where it runs, and refusing a missing or stale object in one line."""
import subprocess
import sys

import pytest

from bench.run.runner import execute
from bench.run.targets import ROOT, Workload
from methods._kernel import core_loader
from methods.ebpf import EbpfObserver
from tests.conftest import needs_ebpf

core_reason = EbpfObserver.unavailable_reason(loader="core")
needs_core = pytest.mark.skipif(core_reason is not None, reason=f"the CO-RE loader is unavailable: {core_reason}")


@needs_core
@pytest.mark.parametrize("options", [{}, {"hook": "tracepoint"}, {"match": "exec"}, {"wakeup": "adaptive"}])
def test_the_core_object_captures_exactly(options):
    execution = execute("ebpf", {"loader": "core"} | options, Workload("go", 20_000, goroutines=2))
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (20_000, 0, 0, True)
    assert execution.lost_reported == 0 and execution.mechanism["ebpf"]["loader"] == "core"
    # nothing compiles: not a compiling start, nor a reusing one
    assert execution.mechanism["ebpf"]["compiled_at_start"] is None


@needs_core
def test_the_core_floor_counts_every_write():
    execution = execute("ebpf", {"loader": "core", "capture": "count"}, Workload("go", 5000))
    assert execution.verdict.counted == 5000 and execution.verdict.exact


@needs_core
def test_bcc_and_core_run_the_same_program():
    """One source for what runs per write: both fronts include bpf/write_events.h and nothing
    else of the kind."""
    for front in ("write_events.bpf.c", "write_events.core.bpf.c"):
        text = (ROOT / "bpf" / front).read_text()
        assert text.count('#include "write_events.h"') == 2  # the record's type, then the logic
        assert "bpf_probe_read_user" not in text and "record_write(" not in text.replace("return record_write(", "")


def test_a_missing_or_stale_object_and_a_kernel_without_btf_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(core_loader, "OBJECT", tmp_path / "write_events.core.o")
    assert "is not built: run `make build`" in core_loader.unavailable_reason()
    (tmp_path / "write_events.core.o").write_bytes(b"\0")
    (tmp_path / "write_events.core.o.sha256").write_text("0" * 64 + "\n")
    assert "was built from other sources" in core_loader.unavailable_reason()
    monkeypatch.setattr(core_loader, "KERNEL_BTF", tmp_path / "no-btf")
    assert core_loader.unavailable_reason().startswith("this kernel exposes no BTF")
    result = subprocess.run([sys.executable, "-c", "import sys; from methods._kernel import core_loader as c; "
                             "from pathlib import Path; c.KERNEL_BTF = Path('/nonexistent'); "
                             "from bench.cli import main; sys.exit(main(['run', '--method', 'ebpf', '--loader', "
                             "'core', '--moves', '10']))"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no BTF" in result.stderr


@needs_core
@needs_ebpf
def test_core_runs_without_kernel_headers_or_bcc_and_bcc_does_not():
    from bench.probes.dependence import core_without_headers

    probe = core_without_headers()
    assert probe["measured"] and probe["core"]["exact"], probe
    assert not probe["bcc"]["exact"] and probe["bcc"]["error"], probe


@needs_core
def test_watch_loads_the_core_object_where_it_can():
    assert EbpfObserver.watch_options() == {"loader": "core"}
    result = subprocess.run([sys.executable, "-m", "bench", "watch", "--method", "ebpf", "--",
                             str(ROOT / "gotargets" / "bin" / "rock-paper-scissors"), "-moves", "30"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "30 moves" in result.stdout.splitlines()[-1]
