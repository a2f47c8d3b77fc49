"""The duel: a spy answers each move it sees with the move that beats it, within a deadline."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.as_markdown import table_markdown
from bench.document.cells import us
from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Cell, Section, Table, template

TITLE, ANCHOR = "The duel", "the-duel"


@dataclass
class Duel(Entry):
    SECTION = "duels"
    method: str
    options: dict
    target: str
    placement: str
    moves: int  # moves the opponent played
    rate: float  # moves/s offered
    deadlines_us: list  # the deadlines judged, µs after the opponent's own stamp
    wins: list  # moves answered right within each deadline
    win_rate: list  # wins / moves, per deadline
    answered: int
    wrong: int
    unanswered: int
    delay_p50_ns: int | None  # from the opponent's stamp to the answer, ns (None: nothing answered)
    delay_p99_ns: int | None


def duels(document: Document) -> Table:
    found = Duel.of(document)
    deadlines = sorted({d for duel in found for d in duel.deadlines_us})
    rows = []
    for duel in found:
        won = {d: (rate, wins) for d, rate, wins in zip(duel.deadlines_us, duel.win_rate, duel.wins)}
        rows.append([document.label(duel), duel.target, duel.placement, f"{duel.moves} at {duel.rate:g}/s",
                     *(Cell(f"{won[d][0]:.1%}", f"{won[d][1]:,} of {duel.moves:,} moves won") if d in won else "-"
                       for d in deadlines),
                     "-" if duel.delay_p50_ns is None else us(duel.delay_p50_ns), str(duel.unanswered), str(duel.wrong)])
    return Table(["spy watches through", "target", "placement", "moves", *(f"≤ {d:g} µs" for d in deadlines),
                  "answer delay p50 µs", "unanswered", "wrong"], rows, filters=["spy watches through", "placement"])


def duel_table(document: Document, fmt: str = "github") -> str:
    return table_markdown(duels(document), fmt)


def section(document: Document) -> Section | None:
    if not Duel.of(document):
        return None
    return Section(TITLE, ANCHOR, template("duel"), [duels(document)])
