"""results/README.md, headline.json and the plots come from the document alone, every section
included, and the headline follows one selection rule fixed in advance."""
import json
import subprocess
import sys
from dataclasses import replace

import pytest

from bench.document import plots
from bench.document.headline import headline_json
from bench.document.verdicts import FAILS, HOLDS, NOT_COMPARABLE, UNDETERMINED
from bench.document.report import markdown
from bench.document.rows import Document, DuplicateRow, ResultsError, Row
from bench.run.targets import ROOT
from methods import REGISTRY

RUN = Row(method="ebpf", options={"hook": "raw"}, target="go", goroutines=1, moves=100,
          repeats=2, rate=0.0, paced=False, expected=200, captured=200, lost=0,
          lost_reported=0, phantom=0, in_order=True, exact=True, not_applicable=None,
          ns_per_move_bare=500.0, ns_per_move_observed=900.0, overhead_ns=400.0,
          overhead_iqr_ns=[390.0, 410.0], overhead_ratio=0.8, overhead_ratio_ci=[0.7, 0.9],
          samples_bare_ns_per_move=[500.0, 500.0], samples_observed_ns_per_move=[890.0, 910.0],
          observer_cpu_ns_per_move=1500.0, ready_ms=1150.0, lag_end_ns_max=0,
          ready_ms_compiled=[2000.0], ready_ms_reused=[300.0],
          latency_p50_ns=1000, latency_p90_ns=2000, latency_p99_ns=3000, latency_p999_ns=4000,
          latency_max_ns=5000, latency_cdf_ns=[[0, 10], [50, 1000], [100, 5000]],
          latency_from="target", unstable=[],
          self_checks=[{"tracer_pid": 0, "ld_preload": "", "unexpected_libraries": []}])
METHODS = {name: REGISTRY[name].describe() for name in ("ebpf", "preload", "bpftrace", "ptrace")}
META = {"date": "d", "kernel": "k", "machine": "x86_64", "cpu_count": 2, "cpu_model": "c",
        "lockdown": "none", "bcc": "b", "go": "g", "python": "p", "commit": "abc"}


def document(runs, **sections) -> Document:
    return Document(metadata=dict(META), methods=METHODS, runs=runs,
                    skipped=sections.pop("skipped", [{"method": "bpftrace", "reason": "bpftrace is not installed"}]),
                    sections=sections)


DOCUMENT = document(
    [RUN, replace(RUN, method="preload", options={}, target="go", not_applicable="static binary: LD_PRELOAD not applied")],
    ceilings=[{"method": "ebpf", "options": {"hook": "raw"}, "target": "go", "placement": "shared",
               "unobserved_max": 1e6,
               "ceiling": 8e5, "first_failure": 9e5, "limited_by": "throttled",
               "probes": [{"offered": 8e5, "captured_rate": 8e5, "held": True},
                          {"offered": 9e5, "captured_rate": 8.1e5, "held": False}]}],
    attach=[{"method": "ebpf", "options": {"hook": "raw"}, "repeats": 3, "attach_ms": [2000.0, 20.0, 22.0],
             "first_move_ms": [2001.0, 30.0, 32.0], "compiled_at_start": [True, False, False]}],
    privileges=[{"method": "ebpf", "options": {"hook": "raw"}, "minimum": "CAP_BPF+CAP_PERFMON"}],
    sigkill=[{"method": "ebpf", "options": {"hook": "raw"}, "mode": "attach", "fate": "kept running",
              "tracer_pid_after": 0, "left_behind": []}],
    bystanders=[{"method": "ebpf", "options": {"hook": "raw"}, "moves": 1000, "bystander_ns_per_write_alone": 500.0,
                 "bystander_ns_per_write_watching": 700.0, "bystander_ratio": 1.4, "repeats": 2}])


def test_every_section_is_rendered_from_the_document():
    text = markdown(DOCUMENT)
    for heading in ("## Observation latency", "## Throughput ceiling", "## Start-up",
                    "## Intrusiveness matrix", "## Plots", "## Not applicable", "## Skipped"):
        assert heading in text
    assert "+80% [+70, +90]" in text  # the target's slowdown and its interval
    assert "| 800,000 " in text and "throttled" in text and "20,000 moves/s on one core" in text
    assert "ebpf (raw), launch: CAP_BPF+CAP_PERFMON" in text and "kept running; nothing left" in text
    # Attach is a first start: of an older result's starts in one process, the one that compiled.
    assert "yes, first move in 2001 ms (2001–2001)" in text
    assert "| 2000 (1) " in text and "| 300 (1) " in text  # launches that compiled, and that reused
    assert "| 1150 " in text and "| 2000 (1) " in text and "| 300 (1) " in text and "ebpf (raw), a copy of the opponent: 1.40×" in text
    assert "preload on `go` [run]: static binary: LD_PRELOAD not applied" in text
    assert "bpftrace is not installed" in text


def test_the_plots_are_pngs(tmp_path):
    written = plots.draw(DOCUMENT, tmp_path)
    assert sorted(p.name for p in written) == sorted([plots.OVERHEAD_PNG, plots.LATENCY_PNG, plots.CEILING_PNG])
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    assert "![Overhead per move, log scale](overhead.png)" in markdown(DOCUMENT, [p.name for p in written])
    assert "## Plots" not in markdown(DOCUMENT, [])


def test_the_sweeps_section_shows_wall_times_and_the_run_to_run_spread():
    from bench.document.as_markdown import section_lines
    from bench.document.sections import sweeps

    def sweeps_section(*documents):
        return "\n".join(section_lines(sweeps.section(*documents)))

    def with_ratio(ratio, spread=(0, 0, 0, 0, 0)):
        run = replace(RUN, samples_bare_ns_per_move=[500.0] * 5,
                      samples_observed_ns_per_move=[500.0 * (1 + ratio + d) for d in spread])
        return replace(DOCUMENT, runs=[run], metadata=META | {
            "wall_s": 600, "repeats": 5, "phase_s": {"ceilings": 100.4, "flat-out runs": 480.0}})

    quick = Document(metadata={"wall_s": 40.0, "date": "yesterday"}, methods={}, runs=[])
    text = sweeps_section(with_ratio(0.8), with_ratio(0.9), quick)
    assert "`make bench`, 5 repeats): 600 s" in text and "quick sweep" in text and ": 40 s" in text
    assert "where the time went: flat-out runs 480 s, ceilings 100 s" in text
    extended = with_ratio(0.8)
    extended.runs = [replace(extended.runs[0], repeats=8)]
    assert "5 repeats, up to 8 where the spread asked for more): 600 s" in sweeps_section(extended, None, None)
    # two medians 0.9 and 0.8: sample standard deviation 0.0707, mean 0.85
    assert "| +90%" in text and "| +80%" in text and "8.3%" in text and "0 of 1 rows at most 5 %" in text
    assert "| -10.0 " in text  # the difference, in points of the bare time
    # Every repeat of one sweep above every repeat of the other: told apart, even after Holm.
    assert "**1 of the 1 rows tell the two sweeps apart after the correction** (p < 0.05; 1 before it)" in text
    # Repeats that overlap, medians apart as before: within their own spread.
    overlapping = sweeps_section(with_ratio(0.8, (-0.3, -0.1, 0, 0.1, 0.3)),
                                 with_ratio(0.9, (-0.3, -0.1, 0, 0.1, 0.3)), quick)
    assert "**0 of the 1 rows tell the two sweeps apart" in overlapping and "| 0.6" in overlapping
    # A floor's +3% then +1%: its CV (71%) is marked, and left out of the summary.
    floor = sweeps_section(with_ratio(0.01), with_ratio(0.03), quick)
    assert "70.7% †" in floor and "no row slows the target by 10 % or more" in floor
    other_machine = with_ratio(0.9)
    other_machine.metadata["cpu_model"] = "another"
    assert "Run-to-run spread" not in sweeps_section(with_ratio(0.8), other_machine, None)


def test_holm_corrects_for_testing_many_rows_at_once():
    from bench.stats import holm_adjusted

    # Twenty rows each at p = 0.04: any one alone would be "apart", together none is.
    assert all(p == 0.8 for p in holm_adjusted([0.04] * 20))
    # One strong difference among them survives the correction.
    adjusted = holm_adjusted([0.0001] + [0.5] * 19)
    assert adjusted[0] == pytest.approx(0.002) and adjusted[1:] == [1.0] * 19
    # Step-down: never smaller than a smaller p's adjusted value.
    assert holm_adjusted([0.01, 0.02, 0.03]) == pytest.approx([0.03, 0.04, 0.04])


EBPF_DEFAULTS = {"hook": "raw", "wakeup": "poll", "poll_ms": 10, "ring_mb": 64, "capture": None, "spin_us": 0}


def ebpf_row(overhead_ns: float, placement: str, group: str = "ebpf", spread: float = 0.02, **changes) -> Row:
    """A flat-out eBPF row whose five paired repeats give this overhead, each repeat off by spread."""
    bare = [300.0] * 5
    observed = [300.0 + overhead_ns * (1 + spread * d) for d in (-2, -1, 0, 1, 2)]
    return replace(RUN, group=group, placement=placement, samples_bare_ns_per_move=bare,
                   samples_observed_ns_per_move=observed, overhead_ns=overhead_ns, ns_per_move_bare=300.0,
                   **{"options": dict(EBPF_DEFAULTS), "moves": 200_000} | changes)


def technique(found: Document, name: str = "ebpf") -> dict:
    return next(t for t in headline_json(found)["techniques"] if t["name"] == name)


def headline_document(runs, **sections) -> Document:
    found = document(runs, skipped=[], **sections)
    found.metadata["primary_groups"] = {"ebpf": "ebpf", "ptrace": "seccomp", "preload": "preload"}
    return found


TRACEPOINT = EBPF_DEFAULTS | {"hook": "tracepoint"}


def test_the_headline_shows_the_articles_variant_and_judges_the_claim_on_the_figure_shown():
    default_split = ebpf_row(130.0, "split")
    default_shared = ebpf_row(590.0, "shared")
    tracepoint = ebpf_row(190.0, "split", options=TRACEPOINT)
    tracepoint_shared = ebpf_row(620.0, "shared", options=TRACEPOINT)
    # A cheaper row of the same variant at another run length, in another group, ⚠: the rule
    # fixed in advance never picks it, however cheap.
    cheap = ebpf_row(40.0, "shared", group="uprobe", moves=20_000, unstable=["bare runs spread 60%"], options=TRACEPOINT)
    ebpf = technique(headline_document([default_split, default_shared, tracepoint, tracepoint_shared, cheap]))
    # "eBPF tracepoint": the tracepoint variant is the row shown, the default beside it
    assert ebpf["row"] == tracepoint.identity() and ebpf["other_row"] == tracepoint_shared.identity()
    assert ebpf["cells"]["default_variant"]["row"] == default_split.identity()
    assert ebpf["cells"]["overhead_ns"]["value"] == pytest.approx(190.0)
    overhead = next(c for c in ebpf["claims"] if c["aspect"] == "overhead_ns")
    # the figure beside the verdict is the figure shown, and it is dearer than 2 × 80 ns
    assert overhead["row"] == ebpf["row"] and overhead["measured"] == ebpf["cells"]["overhead_ns"]
    assert overhead["verdict"] == FAILS and overhead["why"].startswith("dearer than claimed")
    assert all(c["row"] in (None, tracepoint.identity()) for c in ebpf["claims"])


@pytest.mark.parametrize("overhead_ns,spread,verdict,why", [
    (100.0, 0.02, HOLDS, "within"),
    (20.0, 0.02, FAILS, "cheaper than claimed"),  # "~80 ns" is refuted from below too
    (300.0, 0.02, FAILS, "dearer than claimed"),
    (160.0, 0.3, UNDETERMINED, "crosses 2×"),
    (40.0, 0.3, UNDETERMINED, "crosses 0.5×"),
])
def test_about_x_is_judged_from_both_sides(overhead_ns, spread, verdict, why):
    rows = [ebpf_row(130.0, "split"), ebpf_row(overhead_ns, "split", spread=spread, options=TRACEPOINT)]
    overhead = next(c for c in technique(headline_document(rows))["claims"] if c["aspect"] == "overhead_ns")
    assert overhead["verdict"] == verdict and why in overhead["why"]


def test_an_unstable_row_makes_no_verdict_alone_and_groups_that_disagree_are_named():
    unstable = ebpf_row(100.0, "split", options=TRACEPOINT, unstable=["bare runs spread 31%"])
    found = headline_document([unstable, ebpf_row(300.0, "split", group="bpftrace", options=TRACEPOINT)])
    ebpf = technique(found)
    assert ebpf["cells"]["overhead_ns"]["unstable"] == ["bare runs spread 31%"]
    from bench.document.as_markdown import section_lines
    from bench.document.sections import headline

    assert "⚠, split" in "\n".join(section_lines(headline.section(headline_json(found))))
    overhead = next(c for c in ebpf["claims"] if c["aspect"] == "overhead_ns")
    assert overhead["verdict"] == UNDETERMINED and "alone it would say holds" in overhead["why"]
    assert overhead["in_other_groups"] == {"bpftrace": FAILS}
    assert overhead["groups_disagree"] == "does not hold in `bpftrace`; undetermined in `ebpf`"


PROBE = {"method": "ebpf", "options": TRACEPOINT, "mode": "launch", "minimum": "CAP_BPF+CAP_PERFMON"}
AS_USER = {"uid": 65534, "capabilities": "CAP_BPF+CAP_PERFMON", "worked": False, "error": "ERROR: x", "refused": None}


@pytest.mark.parametrize("probes,verdict,why", [
    ([PROBE | {"as_user": AS_USER | {"worked": True, "error": None}}], HOLDS, "exact as uid 65534"),
    ([PROBE | {"as_user": AS_USER | {"refused": {"call": 'openat("/sys/kernel/tracing/x/id")', "errno": "EACCES",
                                                 "kind": "a tracefs file permission, not a capability"}}}],
     FAILS, 'the kernel refused openat("/sys/kernel/tracing/x/id") with EACCES (a tracefs file permission'),
    ([PROBE | {"as_user": AS_USER | {"refused": {"call": "bpf(BPF_PROG_LOAD)", "errno": "EPERM",
                                                 "kind": "a missing capability or a policy"}}}],
     FAILS, "bpf(BPF_PROG_LOAD) with EPERM"),
    # tapbench's own check stopped it: the kernel was never asked
    ([PROBE | {"as_user": AS_USER}], UNDETERMINED, "tapbench stopped before the kernel refused anything"),
    ([PROBE], UNDETERMINED, "not tried as an unprivileged user"),
    ([PROBE | {"minimum": "CAP_SYS_ADMIN", "as_user": AS_USER | {"worked": True}}], FAILS, "root needed CAP_SYS_ADMIN"),
    ([], NOT_COMPARABLE, "not measured"),
])
def test_the_privilege_claim_is_judged_on_what_the_kernel_answered_for_the_articles_hook(probes, verdict, why):
    raw = PROBE | {"options": EBPF_DEFAULTS | {"loader": "core"},
                   "as_user": AS_USER | {"worked": True, "error": None}}  # another hook: named, not judged
    ebpf = technique(headline_document([ebpf_row(130.0, "split", options=TRACEPOINT)], privileges=probes + [raw]))
    privileges = next(c for c in ebpf["claims"] if c["aspect"] == "privileges")
    assert privileges["verdict"] == verdict and why in privileges["why"], privileges["why"]
    if probes:
        assert "ebpf (raw, poll, core), launch as uid 65534: exact" in privileges["why"]


def test_zero_intrusiveness_faces_what_the_target_and_its_neighbours_pay():
    still = replace(ebpf_row(130.0, "split", options=TRACEPOINT), samples_observed_ns_per_move=[300.0] * 5,
                    overhead_ratio=0.0, overhead_ratio_ci=[-0.01, 0.01])
    slowed = ebpf_row(130.0, "split", options=TRACEPOINT)  # +43 %

    def parts(row, bystanders=()):
        claims = technique(headline_document([row], bystanders=list(bystanders)))["claims"]
        return {c["part"]: c["verdict"] for c in claims if c["aspect"] == "intrusiveness"}

    bystander = {"method": "ebpf", "options": TRACEPOINT, "bystander": "copy", "moves": 1000, "repeats": 5,
                 "bystander_ns_per_write_alone": 100.0, "bystander_ns_per_write_watching": 100.0,
                 "bystander_ratio": 1.0, "samples_alone": [100.0] * 5,
                 "samples_watching": [100.0, 100.5, 99.5, 100.2, 99.8]}
    assert parts(still, [bystander]) == {"unmodified": HOLDS, "unslowed": HOLDS}
    assert parts(slowed, [bystander]) == {"unmodified": HOLDS, "unslowed": FAILS}
    assert parts(still, [bystander | {"samples_watching": [115.0] * 5}])["unslowed"] == FAILS  # a neighbour pays
    wide = replace(still, overhead_ratio_ci=[-0.01, 0.05])
    assert parts(wide)["unslowed"] == UNDETERMINED
    seen = replace(still, self_checks=[{"tracer_pid": 12}])
    assert parts(seen)["unmodified"] == FAILS


def test_a_ceiling_is_a_bracket_of_every_search():
    def verdict(searches):
        ceilings = [{"method": "ebpf", "options": {}, "target": "go", "placement": "shared", "unobserved_max": 1e6,
                     "ceiling": searches[0][0], "first_failure": searches[0][1], "limited_by": "loss", "probes": [],
                     "searches": [{"ceiling": held, "first_failure": failed, "limited_by": "loss"}
                                  for held, failed in searches]}]
        ebpf = technique(headline_document([ebpf_row(130.0, "split", options=TRACEPOINT)], ceilings=ceilings))
        return next(c["verdict"] for c in ebpf["claims"] if c["aspect"] == "ceiling_per_s"), ebpf["cells"]

    found, cells = verdict([(1.8e6, 2.0e6), (1.9e6, 2.1e6)])
    assert found == HOLDS and (cells["ceiling_per_s"]["held"], cells["ceiling_per_s"]["failed"]) == (1.8e6, 2.1e6)
    assert verdict([(None, 1000.0), (None, 1000.0)])[0] == FAILS
    assert verdict([(25_000.0, 27_000.0), (15_000.0, 16_000.0)])[0] == UNDETERMINED


def test_kernel_claims_are_undetermined_on_one_kernel_and_judged_from_a_matrix_of_three():
    found = headline_document([ebpf_row(130.0, "split", options=TRACEPOINT)])
    claim = next(c for c in technique(found)["claims"] if c["aspect"] == "kernel_dependence")
    assert claim["verdict"] == UNDETERMINED and "measured on 1 kernel" in claim["why"]
    matrix = {"kernels": ["5.10", "6.1", "6.12", "6.18"], "verdicts": {"ebpf": {"verdict": FAILS, "why": "w"}}}
    judged = next(c for c in headline_json(found, kernels=matrix)["techniques"] if c["name"] == "ebpf")["claims"]
    assert next(c for c in judged if c["aspect"] == "kernel_dependence")["verdict"] == FAILS


def test_machines_that_disagree_are_named_with_what_differs():
    here = headline_document([ebpf_row(100.0, "split", options=TRACEPOINT)])
    there = headline_document([ebpf_row(400.0, "split", options=TRACEPOINT)])
    here.metadata["machine_id"], there.metadata["machine_id"] = "intel", "amd"
    there.metadata["cpu_model"] = "AMD EPYC"
    data = headline_json(here, {"intel": here, "amd": there})
    overhead = next(c for c in next(t for t in data["techniques"] if t["name"] == "ebpf")["claims"]
                    if c["aspect"] == "overhead_ns")
    assert overhead["machines"] == {"intel": HOLDS, "amd": FAILS}
    assert overhead["machines_disagree"] == "holds in `intel`; does not hold in `amd`"
    assert overhead["machine_differences"]["amd"].startswith("AMD EPYC")


def test_cheapest_is_said_only_where_the_intervals_separate():
    from bench.document.headline_text import cheapest_sentence

    def cell(value, low, high):
        return {"cells": {"overhead_ns": {"value": value, "interval": [low, high], "unstable": [], "placement": "split"}}}

    apart = [cell(70, 60, 80) | {"name": "zpoline"}, cell(500, 400, 600) | {"name": "ebpf"}]
    assert "every other technique's interval lies above it" in cheapest_sentence(apart)
    close = [cell(70, 60, 80) | {"name": "zpoline"}, cell(67, 51, 101) | {"name": "preload"}]
    assert "not told apart" in cheapest_sentence(close) and "×" not in cheapest_sentence(close)


def test_what_the_opponent_noticed_is_one_answer_in_the_headline_and_the_matrix():
    seccomp = {"tracer_pid": 0, "seccomp": 2, "no_new_privs": 1, "ld_preload": "", "unexpected_libraries": []}
    row = replace(ebpf_row(130.0, "split", options=TRACEPOINT), self_checks=[seccomp])
    found = headline_document([row])
    noticed = technique(found)["cells"]["noticed"]
    assert noticed == ["a seccomp filter", "no_new_privs"]
    text = markdown(found)
    matrix = next(line for line in text[text.index("## Intrusiveness matrix"):].splitlines()
                  if line.startswith("| ebpf "))
    assert "a seccomp filter, no_new_privs" in matrix


def test_duplicate_row_keys_are_refused_when_read():
    with pytest.raises(DuplicateRow, match="two rows with the key"):
        Document.from_json(document([RUN, RUN]).to_json(), "twice.json")
    assert len(Document.from_json(document([RUN, replace(RUN, group="other")]).to_json(), "x").runs) == 2


def test_a_row_with_a_missing_or_misspelt_field_is_refused_when_read():
    data = document([RUN]).to_json()
    data["runs"][0]["overhaed_ns"] = data["runs"][0].pop("overhead_ns")
    with pytest.raises(ResultsError, match="missing overhead_ns; unknown overhaed_ns"):
        Document.from_json(data, "typo.json")
    data = document([RUN]).to_json()
    data["runs"][0]["moves"] = "many"
    with pytest.raises(ResultsError, match="moves is 'many'"):
        Document.from_json(data, "typo.json")


def test_a_floor_that_is_noise_divides_nothing():
    from bench.run.results import add_floor_ratios

    backend = replace(RUN, options={"hook": "raw"}, samples_bare_ns_per_move=[100.0] * 5,
                      samples_observed_ns_per_move=[160.0, 158.0, 162.0, 161.0, 159.0])
    noise = replace(RUN, options={"hook": "raw", "capture": "count"}, capture="count",
                    samples_bare_ns_per_move=[100.0] * 5, samples_observed_ns_per_move=[98.0, 101.0, 103.0, 99.0, 100.0])
    add_floor_ratios([backend, noise])
    assert backend.over_floor is None and "includes 0" in backend.over_floor_note
    floor = replace(noise, samples_observed_ns_per_move=[110.0, 111.0, 109.0, 110.0, 110.0])
    add_floor_ratios([backend, floor])
    assert backend.over_floor == pytest.approx(6.0, rel=0.1) and backend.over_floor_note is None


STORED = ROOT / "results" / "machines" / "intel-2cpu-6.18-616ebb" / "latest.json"


def test_report_writes_headline_json_from_a_stored_sweep(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "report", "--json", str(STORED),
                             "--out", str(tmp_path / "README.md"), "--results", str(tmp_path / "results")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "headline.json").read_text())
    names = {t["name"]: t for t in data["techniques"]}
    assert {"ptrace", "preload", "ebpf", "unotify", "uprobe"} <= set(names)
    for entry in names.values():
        row = entry["row"]
        assert {"method", "options", "target", "goroutines", "moves", "placement", "group"} <= set(row)
        for claim in entry["claims"]:
            assert claim["aspect"] in ("overhead_ns", "ceiling_per_s", "intrusiveness", "privileges",
                                       "kernel_dependence")
            assert claim["verdict"] in (HOLDS, FAILS, UNDETERMINED, NOT_COMPARABLE)
            if claim["aspect"] == "overhead_ns":  # the shown row's workload and placement
                assert {k: claim["row"][k] for k in ("group", "placement", "target", "moves")} == \
                    {k: row[k] for k in ("group", "placement", "target", "moves")}
    # The stored sweep's unprivileged probe stopped at tapbench's own check: not judged.
    privileges = next(c for c in names["ebpf"]["claims"] if c["aspect"] == "privileges")
    assert privileges["verdict"] == UNDETERMINED
    # The README answers on one screen; everything else is in report.html beside it.
    lines = (tmp_path / "README.md").read_text().splitlines()
    assert len(lines) <= 250 and max(len(line) for line in lines if line.startswith("|")) <= 160
    decision = lines.index("## Which technique")
    assert decision < 40 and next(i for i, line in enumerate(lines) if line.startswith("| ptrace")) < 40
    assert (tmp_path / "report.html").exists()
    assert not (tmp_path / "results").exists()  # --out writes only there


def test_a_cheap_unstable_row_added_to_a_stored_sweep_does_not_become_the_headline(tmp_path):
    stored = Document.load(STORED)
    before = next(t for t in headline_json(stored)["techniques"] if t["name"] == "ebpf")
    chosen = next(r for r in stored.runs if r.identity() == before["row"])
    cheap = replace(chosen, group="another run length", moves=5_000, overhead_ns=1.0, unstable=["wide"],
                    samples_observed_ns_per_move=list(chosen.samples_bare_ns_per_move))
    stored.runs.append(cheap)
    after = next(t for t in headline_json(stored)["techniques"] if t["name"] == "ebpf")
    assert after["row"] == before["row"] and after["cells"]["overhead_ns"] == before["cells"]["overhead_ns"]


def test_the_reading_side_imports_nothing_that_measures():
    """report, headline, plots and compare read documents: they reach neither methods/ nor the
    runner, even indirectly, so a stored sweep can be re-read whatever the code has become."""
    probe = ("import sys; import bench.document.report, bench.document.headline, bench.document.plots, "
             "bench.document.compare, bench.store; "
             "bad = sorted(m for m in sys.modules if m == 'methods' or m.startswith('methods.') "
             "or m in ('bench.run.runner', 'bench.sweep', 'bench.run.results', 'bench.run.targets', 'bench.run.truth')); "
             "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_bpf_profile_sets_each_program_beside_the_measured_overhead():
    program = {"method": "ebpf", "options": {"hook": "raw"}, "target": "go", "moves": 100, "placement": "shared",
               "runs": 101, "runs_per_move": 1.01, "ns_per_run": 99.0, "ns_per_move": 100.0}
    found = document([replace(RUN, placement="shared", group="ebpf")],
                     bpf_profile=[{"placement": "shared", "empty_program_ns": 36.0, "empty_program_load_ms": 181.0,
                                   "programs": [program, program | {"program": "exec_hook", "ns_per_move": 0.5}]}])
    found.metadata["primary_groups"] = {"ebpf": "ebpf"}  # the overhead beside it is the headline row's group's
    program["program"] = "raw_tracepoint__sys_enter"
    text = " ".join(markdown(found).split())  # table padding aside
    assert "## Where the BPF time goes" in text and "36 ns (shared)" in text
    # overhead 400 ns/move, 100.5 of it in the two programs: 300 outside, shown once per variant
    assert "| ebpf (raw) | shared | raw_tracepoint__sys_enter | 1.010 | 99 | 100 | 400 | 300 |" in text
    assert "| ebpf (raw) | shared | exec_hook | 1.010 | 99 | 0 | - | - |" in text
    assert "one that does nothing took 181 ms to compile and load" in text


def test_the_sweep_sums_its_wall_time_by_kind_of_phase(monkeypatch):
    from bench import sweep

    clock = iter([0.0, 10.0, 15.0, 40.0, 41.0])
    monkeypatch.setattr(sweep.time, "monotonic", lambda: next(clock))
    progress = sweep.Progress(total=1)
    progress.interactive = False
    for text, kind in (("a", "flat-out runs"), ("b", "ceilings"), ("c", "flat-out runs"), ("d", "duels")):
        progress.phase(text, kind)
    progress.close()
    assert progress.seconds == {"flat-out runs": 10.0 - 0.0 + 40.0 - 15.0, "ceilings": 5.0, "duels": 1.0}


def test_two_commits_that_differ_only_in_results_are_the_same_code(tmp_path):
    import subprocess

    from bench.document.compare import same_code

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    def commit(path, text):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
        git("add", "-A")
        git("commit", "-qm", path)
        return git("rev-parse", "HEAD")

    git("init", "-q")
    measured = commit("bench/code.py", "1")
    stored = commit("results/latest.json", "{}")
    changed = commit("bench/code.py", "2")
    assert same_code(measured, stored, tmp_path)
    assert not same_code(measured, changed, tmp_path)
    assert not same_code(measured, stored + "-dirty", tmp_path)
    assert not same_code(measured, "0" * 40, tmp_path)  # not in this history


def test_a_sweep_without_bpf_statistics_says_so_and_goes_on(monkeypatch):
    from bench.probes import bpf_profile
    from bench.probes._probe import Context
    from methods import ObserverError

    def refused(*args):
        raise ObserverError("BPF run-time statistics cannot be enabled: Operation not permitted")

    monkeypatch.setattr(bpf_profile, "bpf_profile", refused)
    context = Context(repeats=1, placements=("shared", "split"))
    assert bpf_profile.run([("ebpf", {})], context) == []
    assert context.skipped == [{"method": "(BPF program times)",
                                "reason": "BPF run-time statistics cannot be enabled: Operation not permitted"}]


def test_report_with_out_writes_only_into_that_folder(tmp_path):
    results = ROOT / "results"
    before = {path: path.stat().st_mtime_ns for path in results.rglob("*") if path.is_file()}
    result = subprocess.run([sys.executable, "-m", "bench", "report", "--json", str(STORED),
                             "--out", str(tmp_path / "out" / "README.md")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert {path: path.stat().st_mtime_ns for path in results.rglob("*") if path.is_file()} == before
    written = [line for line in result.stdout.split(": ", 1)[1].split(", ")]
    assert written and all(path.startswith(str(tmp_path / "out")) for path in written), written


def test_a_refusal_of_tapbench_s_own_files_or_of_fewer_capabilities_than_claimed_judges_nothing():
    from bench.document.verdicts import judge_privileges

    probe = {"label": "ebpf (tracepoint), launch", "minimum": "CAP_BPF+CAP_PERFMON",
             "as_user": {"uid": 65534, "capabilities": "CAP_BPF+CAP_PERFMON", "worked": False, "error": "x",
                         "refused": {"call": 'openat("/home/alice/tapbench/.venv/bin/python")', "errno": "EACCES",
                                     "kind": "tapbench's own files, out of that user's reach"}}}
    verdict, why = judge_privileges("CAP_BPF + CAP_PERFMON suffice", probe, [])
    assert verdict == UNDETERMINED and "not the claim's to answer" in why
    fewer = probe | {"minimum": "CAP_BPF", "as_user": probe["as_user"] | {
        "capabilities": "CAP_BPF", "refused": {"call": "bpf(BPF_PROG_LOAD)", "errno": "EPERM", "kind": "a policy"}}}
    verdict, why = judge_privileges("CAP_BPF + CAP_PERFMON suffice", fewer, [])
    assert verdict == UNDETERMINED and "with only CAP_BPF (fewer than claimed)" in why


def test_a_ceiling_where_the_target_alone_was_throttled_is_the_machine_s_limit():
    from bench.document.verdicts import judge_ceiling

    throttled = "throttled (the target alone, unobserved, was throttled at that rate too)"
    searches = [{"ceiling": 10_000.0, "first_failure": 12_000.0, "limited_by": throttled}] * 2
    assert judge_ceiling(20_000, searches)[0] == UNDETERMINED
    assert judge_ceiling(20_000, [s | {"limited_by": "loss"} for s in searches])[0] == FAILS


def test_a_place_where_a_claim_was_not_comparable_is_no_disagreement():
    from bench.document.verdicts import agreement

    assert agreement({"a": HOLDS, "b": NOT_COMPARABLE}) is None
    assert agreement({"a": HOLDS, "b": FAILS, "c": NOT_COMPARABLE}) == "holds in `a`; does not hold in `b`"


def test_a_figure_and_its_interval_share_one_unit():
    from bench.document.headline_text import figure_text

    assert figure_text(800.0, 600.0, 1200.0) == "0.80 [0.60, 1.20] µs"
    assert figure_text(144.0, 130.0, 176.0) == "144 [130, 176] ns"
