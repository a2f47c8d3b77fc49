"""Intrusiveness matrix: one row per method: what the opponent noticed, attach, least
privilege, SIGKILL of tapbench, a hostile target, bystanders, and what it declares it needs."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.cells import claims_of
from bench.document.entry import Entry
from bench.document.headline import attach_cell
from bench.document.headline_text import attach_text
from bench.document.rows import Document, noticed_by_opponent
from bench.document.section import Section, Table, template
from bench.document.sections.bystanders import Bystander, bystander_cell
from bench.document.sections.privileges import Privilege
from bench.document.sections.startup import Attach

TITLE, ANCHOR = "Intrusiveness matrix", "intrusiveness-matrix"
HEADERS = ["method", "noticed by the opponent", "attach to a running process", "least privilege",
           "SIGKILL of tapbench", "what a hostile target can do to it", "bystander cost",
           "kernel/runtime dependence (declared)", "claimed"]


@dataclass
class SigKill(Entry):
    SECTION = "sigkill"
    method: str
    options: dict
    mode: str  # launch or attach
    fate: str | None  # the opponent's state a second after tapbench was killed (None: the watch did not start)
    tracer_pid_after: int | None = None  # its TracerPid then
    left_behind: list | None = None  # what was left on the machine
    error: str | None = None  # why the probe could not run

    def text(self, document: Document) -> str:
        left = list(self.left_behind or []) + ([f"TracerPid {self.tracer_pid_after}"] if self.tracer_pid_after else [])
        return f"{document.label(self)} ({self.mode}): {self.fate or self.error}" + (
            f"; {', '.join(left)}" if left else "; nothing left")


@dataclass
class Attack(Entry):
    attack: str  # truncate or scribble
    observer_exit: int | None  # the watch's exit status (None: it did not end)
    survived: bool
    target_found: str  # what the target found of the observer's in its memory
    target_said: str | None
    observer_said: str | None  # the watch's ERROR line
    impossible_figure: bool  # the watch printed a figure it cannot have seen
    left_behind: list  # shared memory or BPF programs left after it
    moves_seen: int

    def text(self) -> str:
        """'scribble: found the ring; the observer said: the target damaged ...; exit 1'."""
        if not self.survived:
            outcome = f"the observer DIED (exit {self.observer_exit})"
        else:
            outcome = f"observer exit {self.observer_exit}" + (
                f", said: {self.observer_said}" if self.observer_said else ", nothing to report")
        flaws = (["printed an impossible figure"] if self.impossible_figure else []) + (
            [f"left {', '.join(self.left_behind)}"] if self.left_behind else [])
        return f"{self.attack}: found {self.target_found}; {outcome}" + (f"; **{'; '.join(flaws)}**" if flaws else "")


@dataclass
class Hostile(Entry):
    SECTION = "hostile"
    NESTED = {"attacks": Attack}
    method: str
    options: dict
    attacks: list  # [Attack]


def _by_method(entries, text) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in entries:
        found.setdefault(entry.method, []).append(text(entry))
    return found


def attach_text_of(document: Document, method: str, attaches: dict[str, Attach]) -> str:
    info = document.info(method)
    if method in attaches and attaches[method].first_move_ms:
        return attach_text(attach_cell(document, method))
    if not info:
        return "-"
    return "yes (not measured here)" if info["can_attach"] else f"no: {info['attach_unavailable']}"


def section(document: Document) -> Section | None:
    checks: dict[str, list[dict]] = {}
    claimed: dict[str, str] = {}
    for r in document.runs:
        if document.is_baseline(r) or r.not_applicable or not r.self_checks:
            continue
        checks.setdefault(r.method, []).extend(r.self_checks)  # what any repeat of any row noticed
        claimed[r.method] = "; ".join(c["text"] for aspect in ("intrusiveness", "privileges", "kernel_dependence")
                                      for c in claims_of(document, r, aspect)) or "-"
    if not checks:
        return None
    privileges = _by_method(Privilege.of(document), lambda p: p.text(document))
    sigkill = _by_method(SigKill.of(document), lambda k: k.text(document))
    hostile = _by_method(Hostile.of(document), lambda h: "; ".join(a.text() for a in h.attacks))
    bystander = _by_method(Bystander.of(document), lambda b: f"{document.label(b)}, {b.kind()}: {bystander_cell(b)}")
    attaches = {a.method: a for a in Attach.of(document)}
    rows = [[method, ", ".join(noticed_by_opponent(seen)) or "nothing", attach_text_of(document, method, attaches),
             "<br>".join(privileges.get(method, ["-"])), "<br>".join(sigkill.get(method, ["-"])),
             "<br>".join(hostile.get(method, ["not measured"])), "<br>".join(bystander.get(method, ["-"])),
             document.info(method).get("dependence") or "-", claimed[method]] for method, seen in checks.items()]
    return Section(TITLE, ANCHOR, template("intrusiveness"), [Table(HEADERS, rows, filters=["method"])])
