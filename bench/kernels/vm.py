"""Booting a kernel with virtme-ng (vng) and running one column of the matrix inside it.

What the guest sees (virtme-ng 1.42, pinned in pyproject.toml): the host's root, read-only,
with tmpfs or a throw-away overlay over /tmp, /var/cache, /var/tmp, /var/log, /run and a few
more. A folder under one of those (the kernel cache under /var/cache; a checkout or a
virtualenv under /tmp, as CI's may be) is shown to the guest at the same path with --rodir,
so nothing is copied. The column is written to a folder shared read-write (--rwdir) and
removed once read.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.kernels.catalog import Kernel, say
from bench.kernels.matrix import PROGRESS
from bench.run.targets import ROOT

GUEST_OUT = "/run/tapbench-kernels"
GUEST_MEMORY = "2G"
# What virtme-ng's init hides from the guest (its tmpfs and overlays): a folder under one of
# these is mounted into the guest at its own path.
HIDDEN_IN_GUEST = ("/tmp", "/var/cache", "/var/tmp", "/var/log", "/var/lib/apt", "/var/lib/private",
                   "/var/lib/portables", "/var/lib/machines", "/var/lib/sudo", "/var/spool", "/run", "/dev/shm")
BOOT_ALLOWANCE_S = 240  # boot and feature probes under emulation; a boot took 10-30 s here
KVM_PROBE_TIMEOUT_S = 45  # a KVM boot takes a few seconds; a nested host hangs
# The console lines that say why a guest ended early: the panic, and what virtme's initramfs
# could not find (a cloud kernel has no 9p: the host's root cannot be mounted).
WHY_ENDED = re.compile(r"virtme initramfs: .*does not have module fs-|Kernel panic", re.IGNORECASE)


class BootFailed(Exception):
    pass


def vng() -> str | None:
    """The vng of tapbench's virtualenv (pyproject.toml pins it), else one on PATH."""
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def missing_tools() -> str | None:
    """Why no kernel can be booted here, or None."""
    if vng() is None:
        return "virtme-ng's vng is not installed: `sudo make setup` installs it (pinned in pyproject.toml)"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed: `sudo make setup` installs Debian's qemu-system-x86"
    if shutil.which("busybox") is None:
        return "busybox is not installed (virtme-ng's initramfs needs it): `sudo make setup` installs busybox-static"
    return None


def shown_to_guest(paths: list[Path]) -> list[Path]:
    """The folders to mount into the guest at their own paths: those it would not see."""
    hidden = [p for p in paths if any(p == Path(h) or Path(h) in p.parents for h in HIDDEN_IN_GUEST)]
    return sorted({p for p in hidden if not any(q in p.parents for q in hidden)})


def vng_argv(kernel: Kernel, kvm: bool, command: str, rodirs: list[Path], out: Path | None) -> list[str]:
    argv = [vng(), "--run", str(kernel.image), "--cpus", "1", "--memory", GUEST_MEMORY, "--verbose"]
    argv += [] if kvm else ["--disable-kvm"]
    for folder in rodirs:
        argv += ["--rodir", str(folder)]
    if out is not None:
        argv += ["--rwdir", f"{GUEST_OUT}={out}"]
    return argv + ["--exec", command]


def _environment() -> dict:
    """vng runs virtme-run and qemu from PATH: the virtualenv's bin first."""
    return os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def run_guest(argv: list[str], timeout_s: float, log: Path, name: str, boot_timeout_s: float | None = None) -> int | None:
    """vng until it exits; killed with its process group (None) if the guest's program has said
    nothing within boot_timeout_s (a boot that stalls) or the whole run passes timeout_s. Its
    console goes to log; the cells' progress lines are passed on."""
    with open(log, "w") as console:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", env=_environment(), start_new_session=True)
        watchdog = _Watchdog(process, boot_timeout_s or timeout_s, timeout_s)
        try:
            for line in process.stdout:
                console.write(line)
                if line.startswith(PROGRESS):
                    watchdog.started.set()
                    say(f"{name}: {line.removeprefix(PROGRESS).strip()}")
            process.wait()
        finally:
            watchdog.done.set()
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return None if watchdog.fired else process.returncode


class _Watchdog:
    """Kills a guest's process group from a thread of its own, so that a guest that prints
    nothing cannot keep the reading loop waiting: when its program has not started within
    boot_s, or it has not ended within total_s."""

    def __init__(self, process: subprocess.Popen, boot_s: float, total_s: float):
        self.fired = False
        self.started, self.done = threading.Event(), threading.Event()
        self._process, self._boot_s, self._total_s = process, boot_s, total_s
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        began = time.monotonic()
        if not self.started.wait(self._boot_s) and not self.done.is_set():
            self._kill()
        elif not self.done.wait(max(0.0, self._total_s - (time.monotonic() - began))):
            self._kill()

    def _kill(self) -> None:
        self.fired = True
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def why_it_failed(log: Path) -> str:
    """What of a guest's console says why it ended early (what was missing, the panic), else
    its last line."""
    lines = [re.sub(r"^\[ *[\d.]+\] ", "", line.strip()) for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    reasons = list(dict.fromkeys(line[:200] for line in lines if WHY_ENDED.search(line)))
    return "; ".join(reasons[:2]) if reasons else (lines or ["no output at all"])[-1][-300:]


@dataclass
class GuestColumn:
    column: dict | None  # what bench/kernels/cells.py wrote, or None
    error: str | None


def measure_in_guest(kernel: Kernel, kvm: bool, guest_command: str, timeout_s: float, cache: Path) -> GuestColumn:
    """Boot the kernel, run guest_command (which writes GUEST_OUT/column.json), return it."""
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{Path(kernel.package or kernel.image.name).name}.log"
    rodirs = shown_to_guest([cache, ROOT, Path(sys.prefix)])
    out = Path(tempfile.mkdtemp(prefix="tapbench-kernels-"))
    try:
        say(f"{kernel.name}: booting {kernel.image.name} under {'KVM' if kvm else 'software emulation (QEMU TCG)'}"
            + (f", showing {', '.join(map(str, rodirs))} to the guest" if rodirs else "") + f"; console in {log}")
        returncode = run_guest(vng_argv(kernel, kvm, guest_command, rodirs, out), timeout_s, log, kernel.name,
                               BOOT_ALLOWANCE_S)
        result = out / "column.json"
        if result.exists():
            return GuestColumn(json.loads(result.read_text()), None)
        if returncode is None:
            return GuestColumn(None, f"killed: its program had not started within {BOOT_ALLOWANCE_S} s or not ended "
                                     f"within {timeout_s:g} s; its console's last line: {why_it_failed(log)}")
        return GuestColumn(None, f"the guest ended (vng exit status {returncode}) with no result: {why_it_failed(log)}")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def guest_command(argv: list[str]) -> str:
    """The shell command the guest runs: from the checkout, the column's program."""
    return f"cd {shlex.quote(str(ROOT))} && " + " ".join(shlex.quote(a) for a in argv)


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def kvm_works(kernel: Kernel, cache: Path) -> tuple[bool, str]:
    """Whether a guest boots under KVM here, tried once per boot of this machine (a nested
    host may offer /dev/kvm on which a stock kernel hangs), and why."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    verdict = cache / "kvm.json"
    if verdict.exists():
        known = json.loads(verdict.read_text())
        if known.get("boot_id") == boot_id():
            return known["works"], known["why"] + " (tried earlier since this machine booted)"
    say(f"trying KVM: {kernel.name} booting with a {KVM_PROBE_TIMEOUT_S} s limit")
    log = cache / "logs" / "kvm-probe.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    returncode = run_guest(vng_argv(kernel, True, "true", shown_to_guest([cache]), None), KVM_PROBE_TIMEOUT_S,
                           log, "kvm")
    works = returncode == 0
    why = "a guest booted under KVM" if works else (
        f"a guest under KVM did not finish booting within {KVM_PROBE_TIMEOUT_S} s" if returncode is None
        else f"a guest under KVM failed (vng exit status {returncode})")
    verdict.write_text(json.dumps({"boot_id": boot_id(), "works": works, "why": why}))
    return works, why
