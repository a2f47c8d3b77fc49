"""The intrusiveness probes that feed the matrix in results/README.md, run for real."""
import shutil

import pytest

from bench.intrusion import attach_startup, least_privilege, sigkill_fate
from methods import REGISTRY
from methods.process import effective_capabilities
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


@needs_root
def test_attach_start_up_is_measured_to_the_first_move():
    found = attach_startup("ptrace", {"strategy": "step"}, repeats=2)
    assert len(found["attach_ms"]) == len(found["first_move_ms"]) == 2
    assert all(first >= attach for attach, first in zip(found["attach_ms"], found["first_move_ms"]))
