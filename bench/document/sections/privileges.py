"""Least privilege: for each variant and mode, the capability sets tried, the least that
worked as root, and the same set given to an unprivileged user."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template
from bench.document.verdicts import refusal_text

TITLE, ANCHOR = "Least privilege", "least-privilege"


@dataclass
class AsUser(Entry):
    """The least set tried again as an unprivileged user."""
    uid: int
    capabilities: str  # the set given, 'CAP_A+CAP_B' or 'none'
    worked: bool
    error: str | None  # what it said when it did not work
    refused: dict | None = None  # the call the kernel refused: call, errno, kind (format 6)

    def outcome(self) -> str:
        if self.worked:
            return "works"
        return f"fails: {refusal_text(self.refused) if self.refused else self.error}"


@dataclass
class Attempt(Entry):
    capabilities: str  # the bounding set, 'CAP_A+CAP_B' or 'none'
    worked: bool
    error: str | None  # what it said when it did not work


@dataclass
class Privilege(Entry):
    SECTION = "privileges"
    NESTED = {"as_user": AsUser, "attempts": Attempt}
    method: str
    options: dict
    minimum: str | None  # the least capability set that worked as root (None: none tried worked)
    mode: str = "launch"  # launch or attach (absent: launch, older results)
    attempts: list | None = None  # [Attempt]: every set tried, in order
    as_user: AsUser | None = None  # absent: not tried as an unprivileged user (older results)
    note: str | None = None  # why nothing was tried (setpriv missing)

    def text(self, document: Document) -> str:
        user = self.as_user
        tried = "" if user is None else f" (as uid {user.uid} with them: {user.outcome()})"
        return f"{document.label(self)}, {self.mode}: {self.minimum or 'none of the sets tried'}{tried}"

    def evidence(self, label: str) -> dict:
        """What bench/document/verdicts.py judges and headline.json quotes: the least set and the
        unprivileged try as written."""
        return {"label": label, "minimum": self.minimum, "as_user": self.as_user and self.as_user.to_json()}


def tried(probe: Privilege) -> Cell:
    attempts = probe.attempts or []
    return Cell(", ".join(f"{a.capabilities} {'✓' if a.worked else '✗'}" for a in attempts) or probe.note or "-",
                "\n".join(f"{a.capabilities}: {a.error}" for a in attempts if a.error) or None)


def section(document: Document) -> Section | None:
    probes = Privilege.of(document)
    if not probes:
        return None
    rows = [[document.label(p), p.mode, p.minimum or "none of the sets tried", tried(p),
             "-" if p.as_user is None else f"uid {p.as_user.uid}: {p.as_user.outcome()}"] for p in probes]
    return Section(TITLE, ANCHOR, template("privileges"),
                   [Table(["method", "mode", "least set, as root", "sets tried", "the same set, unprivileged"], rows,
                          filters=["method", "mode"])])
