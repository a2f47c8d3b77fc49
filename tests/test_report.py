"""results/README.md and its plots come from the JSON alone, every section included."""
from bench import plots
from bench.report import markdown
from methods import REGISTRY

RUN = {"method": "ebpf", "options": {"hook": "raw"}, "target": "go", "goroutines": 1, "moves": 100,
       "repeats": 2, "rate": 0.0, "paced": False, "expected": 200, "captured": 200, "lost": 0,
       "lost_reported": 0, "phantom": 0, "in_order": True, "exact": True, "not_applicable": None,
       "ns_per_move_bare": 500.0, "ns_per_move_observed": 900.0, "overhead_ns": 400.0,
       "overhead_iqr_ns": [390.0, 410.0], "overhead_ratio": 0.8, "overhead_ratio_ci": [0.7, 0.9],
       "observer_cpu_ns_per_move": 1500.0, "ready_ms": 1150.0, "lag_end_ns_max": 0,
       "ready_ms_compiled": [2000.0], "ready_ms_reused": [300.0],
       "latency_p50_ns": 1000, "latency_p90_ns": 2000, "latency_p99_ns": 3000, "latency_p999_ns": 4000,
       "latency_max_ns": 5000, "latency_cdf_ns": [[0, 10], [50, 1000], [100, 5000]],
       "latency_from": "target", "unstable": [],
       "self_checks": [{"tracer_pid": 0, "ld_preload": "", "unexpected_libraries": []}]}
DOCUMENT = {
    "format": 3,
    "metadata": {"date": "d", "kernel": "k", "machine": "x86_64", "cpu_count": 2, "cpu_model": "c",
                 "lockdown": "none", "bcc": "b", "go": "g", "python": "p", "commit": "abc"},
    "methods": {name: REGISTRY[name].describe() for name in ("ebpf", "preload", "bpftrace")},
    "runs": [RUN, RUN | {"method": "preload", "options": {}, "target": "go", "not_applicable":
                         "static binary: LD_PRELOAD not applied"}],
    "skipped": [{"method": "bpftrace", "reason": "bpftrace is not installed"}],
    "ceilings": [{"method": "ebpf", "options": {"hook": "raw"}, "target": "go", "placement": "shared",
                  "unobserved_max": 1e6,
                  "ceiling": 8e5, "first_failure": 9e5, "limited_by": "throttled",
                  "probes": [{"offered": 8e5, "captured_rate": 8e5, "held": True},
                             {"offered": 9e5, "captured_rate": 8.1e5, "held": False}]}],
    "attach": [{"method": "ebpf", "options": {"hook": "raw"}, "attach_ms": [2000.0, 20.0, 22.0],
                "first_move_ms": [2001.0, 30.0, 32.0], "compiled_at_start": [True, False, False]}],
    "privileges": [{"method": "ebpf", "options": {"hook": "raw"}, "minimum": "CAP_BPF+CAP_PERFMON"}],
    "sigkill": [{"method": "ebpf", "options": {"hook": "raw"}, "mode": "attach", "fate": "kept running",
                 "tracer_pid_after": 0, "left_behind": []}],
    "bystanders": [{"method": "ebpf", "options": {"hook": "raw"}, "bystander_ns_per_write_alone": 500.0,
                    "bystander_ns_per_write_watching": 700.0, "bystander_ratio": 1.4, "repeats": 2}],
}


def test_every_section_is_rendered_from_the_document():
    text = markdown(DOCUMENT)
    for heading in ("## Observation latency", "## Throughput ceiling", "## Start-up",
                    "## Intrusiveness matrix", "## Plots", "## Not applicable", "## Skipped"):
        assert heading in text
    assert "+80% [+70, +90]" in text  # the target's slowdown and its interval
    assert "| 800,000 " in text and "throttled" in text and "20,000 moves/s on one core" in text
    assert "ebpf (raw), launch: CAP_BPF+CAP_PERFMON" in text and "kept running; nothing left" in text
    # A bcc backend's starts that compiled are shown apart from those that reused the bytecode.
    assert "yes (measured: first move 31 ms after (2001 ms when it compiles))" in text
    assert "| 1150 " in text and "| 2000 (1) " in text and "| 300 (1) " in text and "ebpf (raw), a copy of the opponent: 1.40×" in text
    assert "preload on `go`: static binary: LD_PRELOAD not applied" in text
    assert "bpftrace is not installed" in text


def test_the_plots_are_pngs(tmp_path):
    written = plots.draw(DOCUMENT, tmp_path)
    assert sorted(p.name for p in written) == sorted([plots.OVERHEAD_PNG, plots.LATENCY_PNG, plots.CEILING_PNG])
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    assert "![Overhead per move, log scale](overhead.png)" in markdown(DOCUMENT, [p.name for p in written])
    assert "## Plots" not in markdown(DOCUMENT, [])


def test_the_sweeps_section_shows_wall_times_and_the_run_to_run_spread():
    from bench.report import sweeps_section

    def with_ratio(ratio):
        run = RUN | {"samples_bare_ns_per_move": [500.0] * 5,
                     "samples_observed_ns_per_move": [500.0 * (1 + ratio)] * 5}
        return DOCUMENT | {"runs": [run], "metadata": DOCUMENT["metadata"] | {
            "wall_s": 600, "repeats": 5, "phase_s": {"ceilings": 100.4, "flat-out runs": 480.0}}}

    quick = {"metadata": {"wall_s": 40.0, "date": "yesterday"}, "runs": []}
    text = sweeps_section(with_ratio(0.8), with_ratio(0.9), quick)
    assert "`make bench`, 5 repeats): 600 s" in text and "quick sweep" in text and ": 40 s" in text
    assert "where the time went: flat-out runs 480 s, ceilings 100 s" in text
    extended = with_ratio(0.8)
    extended["runs"] = [extended["runs"][0] | {"repeats": 8}]
    assert "5 repeats, up to 8 where the spread asked for more): 600 s" in sweeps_section(extended, None, None)
    # two medians 0.9 and 0.8: sample standard deviation 0.0707, mean 0.85
    assert "| +90%" in text and "| +80%" in text and "8.3%" in text and "0 of 1 rows at most 5 %" in text
    assert "| -10.0 " in text  # the difference, in points of the bare time
    # Every repeat of one sweep above every repeat of the other: told apart.
    assert "of the 1 rows above 5 %, 1 differ at p < 0.05" in text
    # Repeats that overlap, medians apart as before: within their own spread.
    def spread_around(ratio):
        document = with_ratio(ratio)
        document["runs"][0]["samples_observed_ns_per_move"] = [500.0 * (1 + ratio + d) for d in
                                                               (-0.3, -0.1, 0, 0.1, 0.3)]
        return document
    overlapping = sweeps_section(spread_around(0.8), spread_around(0.9), quick)
    assert "of the 1 rows above 5 %, 0 differ at p < 0.05" in overlapping and "| 0.6" in overlapping
    # A floor's +3% then +1%: its CV (71%) is marked, and left out of the summary.
    floor = sweeps_section(with_ratio(0.01), with_ratio(0.03), quick)
    assert "70.7% †" in floor and "no row slows the target by 10 % or more" in floor
    other_machine = with_ratio(0.9)
    other_machine["metadata"] = other_machine["metadata"] | {"cpu_model": "another"}
    assert "Run-to-run spread" not in sweeps_section(with_ratio(0.8), other_machine, None)


def test_the_headline_table_judges_each_claim_by_one_rule():
    from bench.headline import headline

    tracepoint = RUN | {"options": {"hook": "tracepoint", "wakeup": "poll", "poll_ms": 10, "ring_mb": 64},
                        "overhead_ns": 500.0, "placement": "split"}
    default = RUN | {"options": {"hook": "raw", "wakeup": "poll", "poll_ms": 10, "ring_mb": 64},
                     "overhead_ns": 150.0, "placement": "split"}
    shared_default = default | {"overhead_ns": 900.0, "placement": "shared"}
    document = DOCUMENT | {
        "methods": {name: REGISTRY[name].describe() for name in ("ebpf", "ptrace", "bpftrace")},
        "runs": [default, shared_default, tracepoint],
        "ceilings": [DOCUMENT["ceilings"][0] | {"options": default["options"], "ceiling": 15_000}],
        "privileges": [{"method": "ebpf", "options": default["options"], "mode": "launch",
                        "minimum": "CAP_BPF+CAP_PERFMON"}],
    }
    text = "\n".join(headline(document))
    # The default variant stands for eBPF, in its cheaper placement (split, 150 ns).
    assert "`ebpf (raw, poll)`" in text and "150 ns (+80% [+70, +90]), split" in text
    # ~80 ns is about the tracepoint variant: judged on that row, 500 ns, 6.2× the claim.
    assert "claim: ~80 ns for ebpf (tracepoint, poll): measured 500 ns → **does not hold** (6.2× the claim" in text
    assert "15,000/s (throttled)<br>claim: 20,000 moves/s on one core → **does not hold** (0.8× the claim)" in text
    assert "claim: zero (target unmodified) → **holds**" in text  # the self-check noticed nothing
    assert "claim: CAP_BPF + CAP_PERFMON suffice → **holds**" in text
    assert "*declared:* bcc, which is not CO-RE" in text and "not comparable (declared, not measured)" in text
    # Techniques with no row say why, the peers come last.
    assert text.index("**ptrace injection**") < text.index("**eBPF tracepoint**") < text.index("**bpftrace**")
    assert "not measured in this sweep" in text
    assert "Cheapest per move on this machine: ebpf, 150 ns (split placement)." in text


def test_the_bpf_profile_sets_each_program_beside_the_measured_overhead():
    program = {"method": "ebpf", "options": {"hook": "raw"}, "target": "go", "moves": 100, "placement": "shared",
               "runs": 101, "runs_per_move": 1.01, "ns_per_run": 99.0, "ns_per_move": 100.0}
    document = DOCUMENT | {
        "runs": [RUN | {"placement": "shared"}],
        "bpf_profile": [{"placement": "shared", "empty_program_ns": 36.0, "empty_program_load_ms": 181.0,
                         "programs": [program, program | {"program": "exec_hook", "ns_per_move": 0.5}]}]}
    program["program"] = "raw_tracepoint__sys_enter"
    text = " ".join(markdown(document).split())  # table padding aside
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

    from bench.results import same_code

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
    from bench import sweep
    from methods import ObserverError

    def refused(*args):
        raise ObserverError("BPF run-time statistics cannot be enabled: Operation not permitted")

    monkeypatch.setattr(sweep, "bpf_profile", refused)
    monkeypatch.setattr(sweep, "available", lambda lineup, skipped: lineup)
    skipped = []
    progress = sweep.Progress(total=1)
    progress.interactive = False
    assert sweep.profile_programs(("shared", "split"), skipped, progress) == []
    assert skipped == [{"method": "(BPF program times)",
                        "reason": "BPF run-time statistics cannot be enabled: Operation not permitted"}]
