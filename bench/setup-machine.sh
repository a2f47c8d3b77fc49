#!/bin/bash
# Machine set-up for tapbench on Debian: packages, kernel headers for bcc, tracefs.
# Idempotent: every step checks first and only acts (and says so) when something is missing.
set -euo pipefail

say() { echo "setup: $*"; }

if [ "$(id -u)" != 0 ]; then
    echo "tapbench set-up needs root (it installs packages and mounts tracefs): use sudo" >&2
    exit 1
fi

arch=$(dpkg --print-architecture)
# clang and libbpf-dev build the eBPF hook's CO-RE object (make build); bcc needs the headers;
# binutils-dev gives the zpoline hook libopcodes, its disassembler; chromium opens results/report.html
# in the browser tests (Playwright drives Debian's, so nothing is downloaded); virtme-ng
# (pyproject.toml) boots other kernels for `tapbench kernels` with QEMU, busybox (its
# initramfs), kmod (depmod) and file.
packages=(python3-bpfcc bpfcc-tools bpftool bpftrace python3-seccomp strace python3-venv golang-go gcc libc6-dev make
          clang libbpf-dev binutils-dev "linux-headers-$arch" chromium qemu-system-x86 busybox-static kmod file)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# bcc compiles its programs against /lib/modules/$(uname -r)/build (and .../source for the
# arch-independent headers). A kernel without a headers package of its own gets the
# distribution's: good enough for tracepoint programs, which need no kernel struct offsets
# beyond the stable pt_regs and tracepoint layouts.
modules="/lib/modules/$(uname -r)"
if [ ! -e "$modules/build/include" ]; then
    headers=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$headers" ]; then
        # Only the bcc variants need headers; the CO-RE object needs the kernel's BTF instead.
        say "no /usr/src/linux-headers-*-$arch found: the bcc variants (eBPF --loader bcc, uprobe) will say they cannot run"
    else
        common="${headers%-"$arch"}-common"
        mkdir -p "$modules"
        ln -sfn "$headers" "$modules/build"
        [ -d "$common" ] && ln -sfn "$common" "$modules/source"
        say "kernel $(uname -r) has no headers: linked $modules/build -> $headers and source -> $common"
    fi
fi

if [ ! -d /sys/kernel/tracing/events ]; then
    mount -t tracefs tracefs /sys/kernel/tracing
    say "mounted tracefs at /sys/kernel/tracing"
fi
# securityfs shows the lockdown mode, which every results file records.
if [ -d /sys/kernel/security ] && [ ! -e /sys/kernel/security/lockdown ]; then
    mount -t securityfs securityfs /sys/kernel/security 2>/dev/null \
        && say "mounted securityfs at /sys/kernel/security" || true
fi
