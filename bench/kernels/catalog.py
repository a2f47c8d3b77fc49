"""Which kernels `tapbench kernels` boots, and where they come from: Debian's kernel image
packages (with their headers, for bcc), fetched with apt-get into a cache of tapbench's own.

The host's package database, /lib/modules and settings are never touched: apt-get runs with a
sources list, package lists and a cache of its own (under CACHE/apt), and each kernel is
unpacked with dpkg -x into CACHE/kernels/PACKAGE/root, its headers beside its modules. Both are
reused the next time; the lists are refreshed once a day.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("/var/cache/tapbench")
MIRRORS = {"debian": "http://deb.debian.org/debian", "debian-security": "http://deb.debian.org/debian-security"}
SUITES = {"bullseye": "Debian 11", "bookworm": "Debian 12", "trixie": "Debian 13"}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LISTS_MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class Alias:
    """A short name of the default matrix: the newest image package of one series."""
    series: str
    prefix: str  # what every package name of that series starts with
    pattern: str  # the package names of that series, as a regular expression


# The default matrix's kernels, in one place. The newest package of each series that Debian
# serves is taken (older ones leave the registry); the exact one is recorded with the results.
ALIASES = {
    "5.10": Alias("Debian 11", "linux-image-5.10.0-", r"linux-image-5\.10\.0-\d+-amd64-unsigned"),
    "6.1": Alias("Debian 12", "linux-image-6.1.0-", r"linux-image-6\.1\.0-\d+-amd64-unsigned"),
    "6.12": Alias("Debian 13", "linux-image-6.12.", r"linux-image-6\.12\.\d+\+deb13(\.\d+)?-amd64-unsigned"),
}
DEFAULT_KERNELS = tuple(ALIASES)


class KernelNotFound(Exception):
    """A NAME that is neither an alias, a package Debian serves, nor a vmlinuz on this machine."""


@dataclass(frozen=True)
class Kernel:
    """A kernel ready to boot: its image, the folder of its modules (with build/ and source/
    linked to its headers when it has them), and where it came from."""
    name: str  # as asked for: an alias, a package, a path
    package: str | None
    version: str | None  # the package's version
    series: str | None  # "Debian 11" ...
    image: Path
    modules: Path | None
    headers: str | None  # the headers packages unpacked beside it, or None


def say(text: str) -> None:
    print(f"kernels: {text}", file=sys.stderr, flush=True)


class Apt:
    """apt-get and apt-cache with a sources list, lists and cache of their own under root."""

    def __init__(self, root: Path):
        self.root = root

    def options(self) -> list[str]:
        settings = {"Dir::Etc::SourceList": self.root / "sources.list", "Dir::Etc::SourceParts": self.root / "sources.d",
                    "Dir::State": self.root / "state", "Dir::State::Lists": self.root / "lists",
                    "Dir::State::status": "/dev/null", "Dir::Cache": self.root / "cache",
                    "APT::Sandbox::User": "root"}
        return [argument for name, value in settings.items() for argument in ("-o", f"{name}={value}")]

    def run(self, tool: str, *arguments: str, cwd: Path | None = None) -> str:
        result = subprocess.run([tool, "-q", *self.options(), *arguments], capture_output=True, text=True, cwd=cwd)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise KernelNotFound(f"{tool} {' '.join(arguments)} failed: {last}")
        return result.stdout

    def refresh(self) -> None:
        """The lists of Debian 11-13 (and their security updates), once a day."""
        stamp = self.root / "lists" / ".updated"
        if stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S:
            return
        for folder in ("lists/partial", "state", "cache/archives/partial", "sources.d"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        lines = [f"deb [signed-by={KEYRING}] {MIRRORS[archive]} {suite}{suffix} main"
                 for suite in SUITES for archive, suffix in (("debian", ""), ("debian-security", "-security"))]
        (self.root / "sources.list").write_text("\n".join(lines) + "\n")
        say(f"updating the package lists of {', '.join(SUITES.values())} in {self.root} "
            "(the machine's own stay as they are)")
        self.run("apt-get", "update")
        stamp.touch()

    def names(self, prefix: str) -> list[str]:
        return self.run("apt-cache", "pkgnames", prefix).split()

    def field(self, package: str, name: str) -> str | None:
        """A field of the newest version of a package in the lists, or None if it is not there."""
        try:
            text = self.run("apt-cache", "show", "--no-all-versions", package)
        except KernelNotFound:
            return None
        found = re.search(rf"^{name}: (.*)$", text, re.MULTILINE)
        return found.group(1) if found else None


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def resolve_package(apt: Apt, name: str) -> tuple[str, str | None]:
    """(package, series) for an alias or a package name."""
    alias = ALIASES.get(name)
    if alias is None:
        if apt.field(name, "Version") is None:
            raise KernelNotFound(f"{name} is neither an alias ({', '.join(ALIASES)}), a kernel image package of "
                                 f"{', '.join(SUITES.values())}, nor a vmlinuz on this machine")
        return name, None
    matching = [n for n in apt.names(alias.prefix) if re.fullmatch(alias.pattern, n)]
    if not matching:
        raise KernelNotFound(f"no package of {name} ({alias.pattern}) in the lists of {', '.join(SUITES.values())}")
    return max(matching, key=natural_key), alias.series


def headers_of(apt: Apt, release: str) -> list[str]:
    """The headers packages of a kernel release: linux-headers-RELEASE and the -common one it
    depends on; none if Debian serves none."""
    package = f"linux-headers-{release}"
    depends = apt.field(package, "Depends")
    if depends is None:
        return []
    common = re.findall(r"(linux-headers-[^ ,]*common[^ ,]*)", depends)
    return [package, *common[:1]]


def download(apt: Apt, packages: list[str], folder: Path) -> list[Path]:
    """The .deb of each package in folder, fetched unless it is there already."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in packages if not list(folder.glob(f"{p}_*.deb"))]
    if wanted:
        say(f"downloading {', '.join(wanted)}")
        apt.run("apt-get", "download", *wanted, cwd=folder)
    else:
        say(f"reusing the downloaded {', '.join(packages)}")
    return [sorted(folder.glob(f"{p}_*.deb"))[-1] for p in packages]


def unpack(debs: list[Path], root: Path) -> None:
    """dpkg -x every package into root, once (a marker says it was done whole)."""
    done = root / ".tapbench-unpacked"
    if done.exists():
        return
    say(f"unpacking {', '.join(deb.name for deb in debs)} into {root}")
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        result = subprocess.run(["dpkg", "-x", str(deb), str(root)], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise KernelNotFound(f"dpkg -x {deb.name} failed: {last}")
    done.touch()


def modules_folder(root: Path, release: str) -> Path | None:
    for folder in (root / "lib/modules" / release, root / "usr/lib/modules" / release):
        if folder.is_dir():
            return folder
    return None


def link_headers(modules: Path, root: Path) -> bool:
    """The headers package's build and source links (absolute: /usr/src/...) made to point at
    the headers unpacked beside the modules, relative, so they resolve wherever root is seen."""
    linked = False
    for name in ("build", "source"):
        link = modules / name
        if link.is_symlink() and os.readlink(link).startswith("/"):
            target = root / os.readlink(link).lstrip("/")
            link.unlink()
            link.symlink_to(os.path.relpath(target, modules))
        linked |= (modules / name / "include").is_dir()
    return linked


def debian_kernel(apt: Apt, name: str, cache: Path) -> Kernel:
    """A Debian kernel image package (an alias's, or one named), downloaded and unpacked."""
    apt.refresh()
    package, series = resolve_package(apt, name)
    release = package.removeprefix("linux-image-").removesuffix("-unsigned")
    headers = headers_of(apt, release)
    debs = download(apt, [package, *headers], cache / "downloads")
    root = cache / "kernels" / package / "root"
    unpack(debs, root)
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        raise KernelNotFound(f"{package} holds no /boot/vmlinuz-*: not a kernel image package")
    modules = modules_folder(root, images[0].name.removeprefix("vmlinuz-"))
    has_headers = modules is not None and link_headers(modules, root)
    return Kernel(name=name, package=package, version=apt.field(package, "Version"), series=series, image=images[0],
                  modules=modules, headers=" + ".join(headers) if has_headers else None)


def local_kernel(path: Path) -> Kernel:
    """A vmlinuz on this machine; vng finds its modules in the tree it lies in (…/boot/vmlinuz-X
    beside …/lib/modules/X), with their build link if that tree has one."""
    release = path.name.removeprefix("vmlinuz-")
    root = path.resolve().parent.parent
    modules = modules_folder(root, release)
    headers = "beside its modules" if modules and (modules / "build" / "include").is_dir() else None
    return Kernel(name=str(path), package=None, version=None, series=None, image=path.resolve(), modules=modules,
                  headers=headers)


def find_kernel(name: str, cache: Path) -> Kernel:
    path = Path(name)
    if "/" in name or path.is_file():
        if not path.is_file():
            raise KernelNotFound(f"{name}: no such kernel image")
        return local_kernel(path)
    return debian_kernel(Apt(cache / "apt"), name, cache)
