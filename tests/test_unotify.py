"""The seccomp user-notification backend against the real kernel and the real Go opponent."""
import os
import subprocess
import sys

import pytest

from bench.run.runner import execute
from bench.run.targets import ROOT, Workload
from methods import REGISTRY
from methods._kernel.process import effective_capabilities

reason = REGISTRY["unotify"].unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=f"unotify unavailable: {reason}")


@pytest.mark.parametrize("target", ["go", "cgo", "libc"])
@pytest.mark.parametrize("goroutines", [1, 8])
def test_exact_on_every_build_with_1_and_8_writers(target, goroutines):
    execution = execute("unotify", {}, Workload(target, 100_000, goroutines=goroutines))
    verdict = execution.verdict
    assert (verdict.captured, verdict.lost, verdict.phantom, verdict.in_order) == (100_000, 0, 0, True), verdict
    assert verdict.wrong_pid == 0
    # The opponent's own self-check: a seccomp filter is visible, no tracer is.
    check = execution.truth.report["self_check_start"]
    assert check["seccomp"] == 2 and check["tracer_pid"] == 0
    facts = execution.mechanism["unotify"]
    assert facts["sync_wake_up"] in (True, False) and facts["retried"] >= 0


def test_with_cap_sys_admin_the_target_keeps_no_new_privs_unset():
    if 21 not in effective_capabilities():
        pytest.skip("needs CAP_SYS_ADMIN (root)")
    execution = execute("unotify", {}, Workload("go", 1000))
    assert execution.truth.report["self_check_start"]["no_new_privs"] == 0


@pytest.mark.skipif(len(effective_capabilities()) < 30, reason="needs root, to drop every capability")
def test_it_needs_no_capability_and_then_sets_no_new_privs(tmp_path):
    out = tmp_path / "run.json"
    result = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", sys.executable, "-m",
                             "bench", "run", "--method", "unotify", "--moves", "2000", "--repeats", "1",
                             "--json", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "2000/2000 exact" in result.stdout
    import json
    (row,) = json.loads(out.read_text())["runs"]
    assert row["self_checks"][0]["no_new_privs"] == 1  # what a filter without CAP_SYS_ADMIN costs


def test_a_target_whose_supervisor_is_gone_gets_enosys_for_its_writes(tmp_path):
    """What the launched target experiences when the listener goes away without it (tapbench
    killed, were it not for PR_SET_PDEATHSIG): every later write to stdout fails with ENOSYS."""
    from bench.run.truth import Truth
    from methods.unotify import UnotifyObserver

    report = tmp_path / "truth.json"
    with UnotifyObserver() as observer:
        process = observer.launch(Workload("go", 2000, rate=2000).argv(str(report)))
        observer.release()
        for seen, _ in enumerate(observer.events(), 1):
            if seen == 100:
                break
        os.close(observer._listener)  # the supervisor's end, gone
        observer._listener = None
        returncode = process.wait(timeout=30)
    writers = Truth.load(str(report)).report["writers"]
    assert returncode == 1  # the opponent says it could not write all its moves
    assert writers[0]["errors"] > 0 and writers[0]["written"] >= 100


class HangsUpOnlyWhenReaped:
    """select.poll as a kernel before the change (5.10, 6.1) answers for a seccomp listener:
    no POLLHUP while a task under the filter is a zombie not yet reaped. This kernel (6.18)
    hangs up at exit; the filtered answers stand for the older one's. A poll whose only
    answer was the masked hang-up returns nothing, as the older kernel's would at its timeout."""

    def __init__(self, observer, real_poll):
        self._observer, self._poller = observer, real_poll()

    def register(self, fd, mask):
        self._poller.register(fd, mask)

    def unregister(self, fd):
        self._poller.unregister(fd)

    def poll(self, timeout_ms):
        import select

        ready = []
        for fd, events in self._poller.poll(timeout_ms):
            unreaped = self._observer.process.returncode is None
            if fd == self._observer._listener and unreaped:
                events &= ~select.POLLHUP
            if events:
                ready.append((fd, events))
        return ready


def test_a_kernel_that_hangs_up_only_once_the_target_is_reaped_ends_the_run(monkeypatch, tmp_path):
    """The hang of 5.10 and 6.1: the listener hung up only once the target was reaped, and the
    loop waited for the hang-up before anything reaped it. The loop now reaps the target itself
    once it has exited with nothing left to receive."""
    import select

    from bench.run.truth import Truth
    from methods.unotify import UnotifyObserver

    real_poll = select.poll
    report = tmp_path / "truth.json"
    with UnotifyObserver() as observer:
        monkeypatch.setattr(select, "poll", lambda: HangsUpOnlyWhenReaped(observer, real_poll))
        process = observer.launch(Workload("go", 2000).argv(str(report)))
        observer.release()
        moves = [event.move for event in observer.events()]
        facts = observer.facts()
    assert process.returncode == 0 and Truth.load(str(report)).written == 2000
    assert len(moves) == 2000 and None not in moves
    assert facts["hangup_at_exit"] is False
    assert process.rusage is not None  # reaped with wait4: the target's CPU time is kept


def test_this_kernel_hangs_up_at_exit():
    execution = execute("unotify", {}, Workload("go", 2000))
    assert execution.verdict.captured == 2000
    assert execution.mechanism["unotify"]["hangup_at_exit"] is True


def test_without_sync_wake_up_it_says_so_and_captures_exactly(monkeypatch):
    """SECCOMP_IOCTL_NOTIF_SET_FLAGS refused with EINVAL, as before Linux 6.6."""
    import errno
    import fcntl

    from methods import unotify

    real_ioctl = fcntl.ioctl

    def ioctl(fd, request, *args):
        if request == unotify.SECCOMP_IOCTL_NOTIF_SET_FLAGS:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_ioctl(fd, request, *args)

    monkeypatch.setattr(unotify.fcntl, "ioctl", ioctl)
    execution = execute("unotify", {}, Workload("go", 2000))
    assert execution.verdict.captured == 2000 and execution.verdict.phantom == 0
    assert execution.mechanism["unotify"]["sync_wake_up"] is False
