"""The machine a result was measured on: a fingerprint, and a short readable id derived from it
under which its sweeps are stored (results/machines/<id>/), as asv keeps a machine.json per
machine. Kernel, CPU, hypervisor and mitigations all move the results, so only results of one
machine are compared in absolute terms, and across machines only ratios are.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path

VULNERABILITIES = Path("/sys/devices/system/cpu/vulnerabilities")
# What identifies a machine: a change in any of these makes it another machine.
IDENTITY_KEYS = ("kernel", "cpu_model", "cpu_count", "lockdown", "hypervisor", "preemption", "mitigations")


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return "unknown"


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def lockdown_mode() -> str:
    text = _read("/sys/kernel/security/lockdown")  # e.g. "none [integrity] confidentiality"
    return text[text.find("[") + 1:text.find("]")] if "[" in text else text


def hypervisor() -> str:
    """What the kernel said it runs on ("Hypervisor detected: KVM"), else whether the CPU
    reports a hypervisor at all."""
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        log = ""
    found = re.search(r"Hypervisor detected: (\S+)", log)
    if found:
        return found.group(1)
    return "unknown hypervisor" if " hypervisor" in _read("/proc/cpuinfo") else "none"


def preemption_model() -> str:
    """From the kernel's version string: PREEMPT_DYNAMIC, PREEMPT_RT, PREEMPT or none."""
    version = platform.version()
    return next((model for model in ("PREEMPT_RT", "PREEMPT_DYNAMIC", "PREEMPT") if model in version), "none")


def mitigations() -> dict[str, str]:
    if not VULNERABILITIES.is_dir():
        return {}
    return {entry.name: _read(entry) for entry in sorted(VULNERABILITIES.iterdir())}


def fingerprint() -> dict:
    return {
        "kernel": platform.release(), "machine": platform.machine(), "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(), "lockdown": lockdown_mode(), "hypervisor": hypervisor(),
        "preemption": preemption_model(), "mitigations": mitigations(),
    }


def machine_id(meta: dict) -> str:
    """'intel-2cpu-6.18-1a2b3c': CPU vendor, CPU count and kernel version, then a short hash of
    everything that identifies the machine. Works on the metadata of older results files too,
    which lack some fields: what is missing is hashed as missing."""
    model = str(meta.get("cpu_model", "unknown")).lower()
    vendor = next((v for v in ("intel", "amd", "arm", "ampere", "graviton") if v in model), "cpu")
    kernel = ".".join(str(meta.get("kernel", "0.0")).split(".")[:2])
    identity = repr([(key, meta.get(key)) for key in IDENTITY_KEYS])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:6]
    return f"{vendor}-{meta.get('cpu_count', '?')}cpu-{kernel}-{digest}"
