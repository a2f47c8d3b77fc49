"""Every run: each row of the sweep, its capture checked against the ground truth, and what
watching it cost."""
from __future__ import annotations

from bench.document.cells import claim_text, paired_text, raw_list, us
from bench.document.rows import Document, Row
from bench.document.section import Cell, Section, Table, template

TITLE, ANCHOR = "Every run", "every-run"
FILTERS = ["method", "group", "target", "placement"]


def capture_cell(row: Row) -> str:
    if row.not_applicable:
        return f"n/a: {row.not_applicable}"
    if row.captured is None:
        return "-"
    verdict = "exact" if row.exact else "NOT EXACT"
    if row.capture == "count":
        return f"counted {row.captured}/{row.expected} {verdict} (floor)"
    return f"{row.captured}/{row.expected} {verdict}"


def overhead_cells(row: Row) -> list[Cell]:
    if row.paced:
        # Paced wall time is set by the schedule: what an observer costs shows as lag instead.
        return [Cell(f"paced {row.rate:g}/s: end lag {us(row.lag_end_ns_max)}"), Cell("-")]
    median, low, high = row.overhead_interval_ns
    return [Cell(f"{us(median)} [{us(low)}, {us(high)}]", paired_text(row)),
            Cell(ratio_cell(row), raw_list([round(100 * s, 1) for s in row.slowdowns()], "%"))]


def ratio_cell(row: Row) -> str:
    """The target's slowdown as (observed − bare)/bare with its interval: '+99 % [+80, +120]'
    means the target took 1.99× as long. Flagged when the row is unstable."""
    text = f"{row.overhead_ratio:+.0%}"
    if row.overhead_ratio_ci:
        low, high = row.overhead_ratio_ci
        text += f" [{low * 100:+.0f}, {high * 100:+.0f}]"
    return text + (" ⚠ unstable" if row.unstable else "")


def cost_cell(row: Row) -> Cell:
    """What watching cost the machine per event, counted whole, with its interval; '-' where
    the row's format did not measure it."""
    if row.cpu_cost_ns_per_event is None:
        return Cell("-")
    low, high = row.cpu_cost_ci
    return Cell(f"{us(row.cpu_cost_ns_per_event)} [{us(low)}, {us(high)}]",
                raw_list(row.samples_cpu_cost_ns_per_event, "ns"))


def floor_cell(row: Row) -> str:
    """The backend's overhead over its floor's (the same mechanism only counting), or why none."""
    if row.capture == "count":
        return "(the floor)"
    if row.over_floor_note:
        return "floor not above noise"
    if row.over_floor is None:
        return "-"
    low, high = row.over_floor_ci
    return f"{row.over_floor:.2f}× [{low:.2f}, {high:.2f}]"


def lost_cell(document: Document, row: Row) -> str:
    """Expected minus captured, then the mechanism's own count of its losses in brackets,
    n/a where it keeps none (a tracer cannot drop: the target waits for it)."""
    if row.lost is None or row.not_applicable:
        return "-"
    counted = row.lost_reported if document.info(row.method).get("loss_source") else "n/a"
    return f"{row.lost} ({counted})"


HEADERS = ["method", "group", "target", "G", "placement", "moves×runs", "captured/expected", "lost (own count)",
           "phantom", "in order", "bare µs/move", "observed µs/move", "overhead µs [95 % CI]",
           "target slowdown [95 % CI]", "CPU cost µs/event [95 % CI]", "overhead over floor [95 % CI]",
           "observer CPU µs/move"]
DETAIL = ["claimed", "latency p50/p99 µs", "ready ms"]


def run_cells(document: Document, run: Row, detail: bool) -> list:
    cells = [document.label(run), run.group, run.target, str(run.goroutines), run.placement,
             f"{run.moves}×{run.repeats}", capture_cell(run), lost_cell(document, run),
             "-" if run.phantom is None else str(run.phantom),
             "-" if run.in_order is None else ("yes" if run.in_order else "NO"),
             Cell(us(run.ns_per_move_bare), raw_list(run.samples_bare_ns_per_move, "ns")),
             Cell(us(run.ns_per_move_observed), raw_list(run.samples_observed_ns_per_move, "ns")),
             *overhead_cells(run), cost_cell(run), Cell(floor_cell(run), raw_list(run.over_floor_samples, "×")),
             us(run.observer_cpu_ns_per_move)]
    if detail:
        cells += [claim_text(document, run, "overhead_ns"),
                  Cell(f"{us(run.latency_p50_ns)}/{us(run.latency_p99_ns)}",
                       raw_list(run.latency_p99_per_repeat_ns, "ns (p99 of each repeat)")),
                  f"{run.ready_ms:.0f}"]
    return cells


def runs(document: Document, detail: bool = True) -> Table:
    """Every run: capture and cost. detail adds what other sections show on their own (claim,
    latency, start-up), for a terminal that has no other section."""
    return Table(HEADERS + (DETAIL if detail else []), [run_cells(document, run, detail) for run in document.runs],
                 filters=FILTERS)


def users_sentence(document: Document) -> str:
    """Who the targets of the rows ran as (`run` and `watch` launch as the invoking user; the
    sweep's own opponent as tapbench's user)."""
    users = sorted({r.target_user for r in document.runs if r.target_user is not None})
    unknown = sum(r.target_user is None for r in document.runs)
    if not users:
        return "Who the targets ran as is not recorded (results older than format 4)." if unknown else ""
    return f"The targets ran as {', '.join(users)}" + (f"; for {unknown} rows it is not recorded." if unknown else ".")


def section(document: Document) -> Section:
    return Section(TITLE, ANCHOR, template("every_run"), [runs(document, detail=False)])
