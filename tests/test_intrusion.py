"""The intrusiveness probes that feed the matrix in results/README.md, run for real."""
import shutil

import pytest

from bench.probes.attach import attach_startup
from bench.probes.privileges import least_privilege
from bench.probes.sigkill import sigkill_fate
from methods import REGISTRY
from methods._kernel.process import effective_capabilities
from tests.conftest import needs_ebpf

needs_root = pytest.mark.skipif(len(effective_capabilities()) < 30,
                                reason="needs root (a full capability set to drop from)")


@needs_ebpf
def test_sigkill_while_ebpf_watches_leaves_the_opponent_running_and_no_program():
    fate = sigkill_fate("ebpf", {})
    assert fate["mode"] == "attach" and fate["fate"] == "kept running"
    assert fate["tracer_pid_after"] == 0 and fate["left_behind"] == []


@needs_root
@pytest.mark.parametrize("exitkill,expected", [(False, "kept running"), (True, "killed with tapbench")])
def test_sigkill_while_ptrace_watches_follows_exitkill(exitkill, expected):
    fate = sigkill_fate("ptrace", {"strategy": "step", "exitkill": exitkill})
    assert fate["fate"] == expected
    if expected == "kept running":
        assert fate["tracer_pid_after"] == 0  # detached by the kernel, not left stopped


@needs_root
def test_sigkill_while_strace_watches_an_attached_opponent_leaves_it_running_untraced():
    if REGISTRY["strace"].unavailable_reason():
        pytest.skip(REGISTRY["strace"].unavailable_reason())
    fate = sigkill_fate("strace", {})
    assert fate["mode"] == "attach" and fate["fate"] == "kept running" and fate["tracer_pid_after"] == 0


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_least_privilege_of_ptrace_on_its_own_child_is_no_capability():
    found = least_privilege("ptrace", {"strategy": "seccomp"})
    assert found["minimum"] == "none" and found["attempts"] == [
        {"capabilities": "none", "worked": True, "error": None}]


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_attaching_ptrace_to_a_process_root_started_needs_cap_sys_ptrace():
    found = least_privilege("ptrace", {"strategy": "step"}, mode="attach")
    assert found["minimum"] == "CAP_SYS_PTRACE"
    assert "permission denied" in found["attempts"][0]["error"]
    # Also as another user: root's /proc/PID/mem refuses it, the buffer is read all the same.
    assert found["as_user"]["worked"], found["as_user"]


@needs_ebpf
@needs_root
def test_least_privilege_of_ebpf_is_cap_bpf_and_cap_perfmon():
    found = least_privilege("ebpf", {"hook": "raw"})
    assert found["minimum"] == "CAP_BPF+CAP_PERFMON"
    # The kernel was asked (tapbench's own pre-check is off in the probe), each one alone too.
    tried = {a["capabilities"]: a for a in found["attempts"]}
    assert not tried["CAP_BPF"]["worked"] and not tried["CAP_PERFMON"]["worked"]
    assert all("did not compile or load" in a["error"] for a in found["attempts"] if not a["worked"])
    # and as an unprivileged user with exactly those two, the raw tracepoint needs no tracefs:
    # the kernel accepts every call (bcc's loader here)
    assert found["as_user"]["worked"] and found["as_user"]["refused"] is None, found["as_user"]


needs_core = pytest.mark.skipif(bool(REGISTRY["ebpf"].unavailable_reason(loader="core")),
                                reason=f"CO-RE loader unavailable: {REGISTRY['ebpf'].unavailable_reason(loader='core')}")


@needs_core
@needs_root
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to name the refused call")
def test_an_unprivileged_tracepoint_is_refused_by_the_kernel_at_tracefs_and_the_call_is_named():
    """The privilege verdict is judged on the kernel's answer: as uid 65534 with CAP_BPF and
    CAP_PERFMON, the CO-RE object loads, but the tracepoint's id cannot be read from tracefs."""
    from bench.probes.privileges import as_unprivileged_user, launch_works, refused_call

    as_user = as_unprivileged_user("-all,+bpf,+perfmon")
    tracepoint = {"hook": "tracepoint", "loader": "core"}
    assert launch_works(as_user, "ebpf", tracepoint)[0] is False
    assert refused_call(launch_works, as_user, "ebpf", tracepoint) == {
        "call": 'openat("/sys/kernel/tracing/events/syscalls/sys_enter_write/id")', "errno": "EACCES",
        "kind": "a tracefs file permission, not a capability"}
    assert launch_works(as_user, "ebpf", {"hook": "raw", "loader": "core"})[0] is True
    # with no capability at all, the kernel refuses the program itself
    refused = refused_call(launch_works, as_unprivileged_user("-all"), "ebpf", {"hook": "raw", "loader": "core"})
    assert refused["call"].startswith("bpf(BPF_") and refused["errno"] == "EPERM"


@needs_root
def test_attach_start_up_is_measured_to_the_first_move_of_a_new_watch():
    found = attach_startup("ptrace", {"strategy": "step"}, repeats=2)
    assert found["errors"] == [] and found["start"] == "a new `tapbench watch --pid` each"
    assert len(found["attach_ms"]) == len(found["first_move_ms"]) == 2
    assert all(first >= attach for attach, first in zip(found["attach_ms"], found["first_move_ms"]))


def test_a_watch_probe_runs_the_variant_it_is_labelled_with():
    from bench.probes._watching import watch_flags

    # watch would pick the CO-RE loader itself: the probe of the bcc variant says bcc
    assert "--loader=bcc" in watch_flags("ebpf", {"hook": "raw"})
    assert "--loader=core" in watch_flags("ebpf", {"hook": "raw", "loader": "core"})
    assert watch_flags("ptrace", {"strategy": "step"}) == ["--strategy=step"]
