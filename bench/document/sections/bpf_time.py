"""Where the BPF time goes: the kernel's own timing of each BPF program, beside the overhead
per move the sweep measured for the same variant, target and placement in the technique's own
group: what the program accounts for, and what not."""
from __future__ import annotations

from dataclasses import dataclass

from bench.document.entry import Entry
from bench.document.rows import Document
from bench.document.section import Section, Table, template

TITLE, ANCHOR = "Where the BPF time goes", "where-the-bpf-time-goes"


@dataclass
class BpfProgram(Entry):
    method: str
    options: dict
    target: str
    moves: int  # moves written while it was timed
    placement: str
    program: str  # the BPF program's name
    runs: int  # times the kernel ran it
    runs_per_move: float
    ns_per_run: float | None  # the kernel's time per run, the empty program's subtracted (None: it never ran)
    ns_per_move: float  # its whole time over the moves


@dataclass
class BpfProfile(Entry):
    SECTION = "bpf_profile"
    NESTED = {"programs": BpfProgram}
    empty_program_ns: float  # a program that does nothing, ns a run under the same statistics
    programs: list  # [BpfProgram]
    placement: str | None = None
    empty_program_load_ms: float | None = None  # bcc's compile and load of the empty program, ms


def measured_overhead(document: Document, program: BpfProgram) -> float | None:
    primary = document.metadata.get("primary_groups") or {}
    same = [r for r in document.runs if r.method == program.method and r.options == program.options
            and r.target == program.target and r.goroutines == 1 and not r.rate
            and r.placement == program.placement and r.group == primary.get(r.method)]
    return same[0].overhead_ns if len(same) == 1 else None


def rows(document: Document, profiles: list[BpfProfile]) -> list[list[str]]:
    found = []
    for profile in profiles:
        variants: dict[str, list[BpfProgram]] = {}
        for program in profile.programs:
            variants.setdefault(document.label(program), []).append(program)
        for label, programs in variants.items():
            overhead = measured_overhead(document, programs[0])
            in_programs = sum(p.ns_per_move for p in programs)
            for index, program in enumerate(programs):
                first = index == 0  # the variant's overhead once, beside all its programs' time
                found.append([label, program.placement, program.program, f"{program.runs_per_move:.3f}",
                              "-" if program.ns_per_run is None else f"{program.ns_per_run:.0f}",
                              f"{program.ns_per_move:.0f}",
                              f"{overhead:.0f}" if first and overhead is not None else "-",
                              f"{overhead - in_programs:.0f}" if first and overhead is not None else "-"])
    return found


def section(document: Document) -> Section | None:
    profiles = BpfProfile.of(document)
    if not profiles:
        return None
    empty = ", ".join(f"{p.empty_program_ns:.0f} ns ({p.placement})" for p in profiles)
    return Section(TITLE, ANCHOR, template("bpf_time", empty=empty),
                   [Table(["variant", "placement", "program", "runs/move", "ns/run", "program ns/move",
                           "overhead ns/move", "outside the programs"], rows(document, profiles),
                          filters=["variant", "placement"])])
