"""Which technique: the README's first screen, one line per technique: what it can see, what
watching costs in its default placement, its one-CPU ceiling, what it needs, what the opponent
noticed, and the article's claims with their verdicts, long lists as short codes with a legend.
Written from the methods section, the rows' findings and headline.json."""
from __future__ import annotations

import re
from dataclasses import dataclass

from bench.document.rows import Document, method_label
from bench.document.section import Section, Table, template
from bench.document.sections.privileges import Privilege
from bench.document.verdicts import FAILS, HOLDS, NOT_COMPARABLE, UNDETERMINED, rate_text

TITLE, ANCHOR = "Which technique", "which-technique"
SEES = (("G", "go"), ("C", "cgo"), ("L", "libc"))  # code, target
CAPABILITIES = {"CAP_SYS_ADMIN": "ADM", "CAP_BPF": "BPF", "CAP_PERFMON": "PERF", "CAP_IPC_LOCK": "LOCK",
                "CAP_SYS_RESOURCE": "RES", "CAP_SYS_PTRACE": "PTR", "CAP_SYS_RAWIO": "RAW"}
# What a technique depends on, found in what it declares (the methods section's `dependence`).
FEATURES = (("BTF", r"\bBTF\b", "the kernel's BTF (CO-RE)"), ("hdr", r"kernel headers", "kernel headers (bcc)"),
            ("tfs", r"tracefs", "tracefs (root's by default)"),
            ("dyn", r"dynamically linked|LD_PRELOAD", "a dynamically linked target"),
            ("mm0", r"mmap_min_addr", "vm.mmap_min_addr = 0, machine-wide"))
NOTICED = (("T", "TracerPid ≠ 0"), ("S", "a seccomp filter"), ("N", "no_new_privs"), ("E", "LD_PRELOAD set"),
           ("Z", "a mapping at address 0"), ("X", "its own text changed"))
LIBRARY = "library "
ASPECT_CODES = {"overhead_ns": "O", "ceiling_per_s": "C", "unmodified": "U", "unslowed": "S", "intrusiveness": "I",
                "privileges": "P", "kernel_dependence": "K"}
ASPECT_NAMES = {"O": "overhead", "C": "ceiling", "U": "target unmodified", "S": "target and neighbours unslowed",
                "I": "intrusiveness (qualitative)", "P": "privileges", "K": "kernel dependence"}
VERDICT_MARKS = {HOLDS: "✓", FAILS: "✗", UNDETERMINED: "?", NOT_COMPARABLE: "–"}


@dataclass
class Profile:
    """A technique as the decision table and the advice below it read it."""
    name: str
    entry: dict  # its headline.json entry
    info: dict  # its methods-section entry
    sees: dict[str, bool]  # target or 'children' / 'running' -> whether it can see it
    launch: Privilege | None  # the least-privilege probe of its launch (its headline variant's, else any)
    attach: list[Privilege]  # its attach probes

    @property
    def cells(self) -> dict:
        return self.entry["cells"]

    @property
    def peer(self) -> bool:
        return bool(self.entry["reference_peer"])


def sees(document: Document, name: str) -> dict[str, bool]:
    info = document.info(name)
    blind = {r.target for r in document.runs if r.method == name and r.not_applicable}
    found = {target: target in (info.get("targets") or []) and target not in blind for _, target in SEES}
    return found | {"children": bool(info.get("follows_children")), "running": bool(info.get("can_attach"))}


def profiles(document: Document, headline: dict, measured: bool = True) -> list[Profile]:
    """Every technique of the headline (measured: only those the headline has a row of)."""
    probes = Privilege.of(document)
    found = []
    for entry in headline["techniques"]:
        if entry["row"] is None and measured:
            continue
        name = entry["name"]
        launches = [p for p in probes if p.method == name and p.mode == "launch"]
        shown = [p for p in launches if document.label(p) == entry.get("label")]
        found.append(Profile(name, entry, document.info(name), sees(document, name), (shown or launches or [None])[0],
                             [p for p in probes if p.method == name and p.mode == "attach"]))
    return found


def sees_code(profile: Profile) -> str:
    codes = [(code, profile.sees[target]) for code, target in SEES]
    codes += [("K", profile.sees["children"]), ("P", profile.sees["running"])]
    return "".join(code if seen else "·" for code, seen in codes)


def capability_code(minimum: str | None) -> str:
    if minimum is None:
        return "root"
    if minimum == "none":
        return "none"
    return "+".join(CAPABILITIES.get(cap, cap.removeprefix("CAP_")) for cap in minimum.split("+"))


def ran_unprivileged(probe: Privilege | None) -> bool:
    return probe is not None and probe.as_user is not None and probe.as_user.worked


def kernel_version(dependence: str) -> str | None:
    found = re.search(r"Linux (\d+\.\d+)\+", dependence)
    return f"≥{found.group(1)}" if found else None


def needs_code(profile: Profile) -> str:
    probe = profile.launch
    refused = probe is not None and probe.as_user is not None and not probe.as_user.worked
    caps = "-" if probe is None else capability_code(probe.minimum) + ("†" if refused else "")
    dependence = profile.info.get("dependence") or ""
    features = [code for code, pattern, _ in FEATURES if re.search(pattern, dependence)]
    version = kernel_version(dependence)
    return " ".join([caps, *([version] if version else []), *features])


def noticed_code(noticed: list[str]) -> str:
    codes = [code for code, seen in NOTICED if seen in noticed]
    libraries = sum(n.startswith(LIBRARY) for n in noticed)
    return "".join(codes) + (f" L{libraries}" if libraries else "") or "-"


def claims_code(entry: dict) -> str:
    marks = [f"{ASPECT_CODES[c.get('part') or c['aspect']]}{VERDICT_MARKS[c['verdict']]}" for c in entry["claims"]]
    return " ".join(marks) or "-"


def interval_text(cell: dict | None) -> str:
    """'9.64 [9.2, 10] µs ⚠': the median, its 95 % interval, three significant figures in ONE unit
    (1.05 [0.996, 1.08] µs, never 1.05 [996, 1.08] µs), the ⚠ of an unstable row."""
    if cell is None or cell.get("value") is None:
        return "-"
    value, (low, high) = cell["value"], cell["interval"]
    in_us = max(abs(value), abs(low), abs(high)) >= 1000
    shown = [f"{ns / 1000:.3g}" if in_us else f"{ns:.0f}" for ns in (value, low, high)]
    return f"{shown[0]} [{shown[1]}, {shown[2]}] {'µs' if in_us else 'ns'}" + (" ⚠" if cell.get("unstable") else "")


def ceiling_code(cell: dict | None) -> str:
    """'2.1–2.2 M/s', '99k–108k/s': the last rate held and the first failed, one unit named once."""
    if cell is None:
        return "-"
    held = "<1k/s" if cell["held"] is None else rate_text(cell["held"])
    if cell["failed"] is None:
        return f"≥{held}"
    failed = rate_text(cell["failed"])
    unit = next((u for u in (" M/s", "k/s") if held.endswith(u) and failed.endswith(u)), None)
    return f"{held.removesuffix(unit)}–{failed}" if unit else f"{held}–{failed}"


def variant(document: Document, entry: dict) -> str:
    """The headline row's method with only the options that differ from its defaults: the
    technique as it runs unless told otherwise, or the article's variant of it."""
    defaults = document.info(entry["name"]).get("default_options", {})
    options = {k: v for k, v in (entry["row"]["options"] or {}).items() if defaults.get(k, v) != v or k not in defaults}
    return method_label(entry["name"], options, document.methods)


HEADERS = ["technique, placement", "sees", "overhead/move", "CPU/event", "ceiling", "needs", "noticed", "claims"]


def row(document: Document, profile: Profile) -> list[str]:
    cells = profile.cells
    if profile.entry["row"] is None:
        return [profile.name + (" (peer)" if profile.peer else ""), sees_code(profile), profile.entry["missing"],
                "-", "-", needs_code(profile), "-", claims_code(profile.entry)]
    name = variant(document, profile.entry) + (" (peer)" if profile.peer else "")
    return [f"{name}, {cells['overhead_ns']['placement']}", sees_code(profile), interval_text(cells["overhead_ns"]),
            interval_text(cells["cpu_cost_ns_per_event"]), ceiling_code(cells["ceiling_per_s"]), needs_code(profile),
            noticed_code(cells["noticed"]), claims_code(profile.entry)]


def legend(found: list[Profile]) -> str:
    caps = sorted({cap for p in found if p.launch and p.launch.minimum not in (None, "none")
                   for cap in p.launch.minimum.split("+")})
    aspects = sorted({code for p in found for code in re.findall(r"([A-Z])[✓✗?–]", claims_code(p.entry))},
                     key=list(ASPECT_NAMES).index) or list(ASPECT_NAMES)
    return template("decision", "legend",
                    caps=", ".join(f"**{CAPABILITIES.get(c, c)}** {c}" for c in caps),
                    features="**≥X.Y** Linux X.Y or later, " + ", ".join(f"**{code}** {what}" for code, _, what in FEATURES),
                    noticed=", ".join(f"**{code}** {what}" for code, what in NOTICED)
                    + ", **L*n*** *n* libraries a plain run does not map",
                    aspects=", ".join(f"**{code}** {ASPECT_NAMES[code]}" for code in aspects),
                    verdicts=", ".join(f"{mark} {verdict}" for verdict, mark in VERDICT_MARKS.items()))


def section(document: Document, headline: dict) -> Section | None:
    found = profiles(document, headline, measured=False)
    if not found:
        return None
    return Section(TITLE, ANCHOR, template("decision"), [Table(HEADERS, [row(document, p) for p in found], notes=legend(found))])
