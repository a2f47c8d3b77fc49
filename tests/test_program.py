"""`tapbench run -- CMD`: programs no one here wrote, each capture held to the kernel's count."""
import json
import shutil
import sys

import psutil
import pytest

from bench.cli import main
from bench.run.referee import unavailable_reason
from methods import REGISTRY
from tests.conftest import OPPONENT, loaded_bpf_program_ids, wait_until_unloaded

referee_reason = unavailable_reason()
needs_referee = pytest.mark.skipif(referee_reason is not None, reason=f"the referee cannot run: {referee_reason}")
WRITES = 1500
# Held-out writers, each making WRITES write() calls to its stdout: a Python loop of os.write,
# Perl's syswrite, and dd copying one block per write.
PYTHON_LOOP = [sys.executable, "-c", f"import os\nfor _ in range({WRITES}): os.write(1, b'rock\\n')"]
PERL_SYSWRITE = ["perl", "-e", f"syswrite(STDOUT, qq(paper\\n)) for 1..{WRITES}"]
DD = ["dd", "if=/dev/zero", "bs=32", f"count={WRITES}", "status=none"]


def available(*methods):
    return [m for m in methods if REGISTRY[m].unavailable_reason() is None]


def measured(tmp_path, argv, methods, *flags):
    out = tmp_path / "program.json"
    code = main(["run", "--method", ",".join(methods), "--repeats", "1", "--json", str(out), *flags, "--", *argv])
    return code, json.loads(out.read_text()) if out.exists() else None


def rows_by_label(document):
    return {row["method"]: row for row in document["rows"] if row["captured"] is not None}


@needs_referee
@pytest.mark.parametrize("argv", [PYTHON_LOOP, PERL_SYSWRITE, DD], ids=["python-os.write", "perl-syswrite", "dd"])
def test_every_technique_that_sees_a_held_out_program_captures_the_kernels_count(tmp_path, argv):
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    methods = available("ebpf", "ptrace", "unotify", "preload", "strace", "bpftrace")
    before = loaded_bpf_program_ids()
    code, document = measured(tmp_path, argv, methods)
    assert code == 0, document
    rows = rows_by_label(document)
    assert set(rows) == set(methods)
    for method, row in rows.items():
        assert row["not_applicable"] is None, (method, row)
        assert row["writes"] == [WRITES], (method, row)  # the referee counted what the program does
        assert row["captured"] == row["expected"] == [WRITES] and row["exact"] is True, (method, row)
        assert row["slowdown"] is not None and row["cpu_cost_ns_per_event"] is not None
    assert not wait_until_unloaded(loaded_bpf_program_ids() - before)


@needs_referee
def test_preload_on_a_static_binary_is_reported_not_applicable_never_zero(tmp_path):
    code, document = measured(tmp_path, [str(OPPONENT), "-moves", "300"], ["preload", "ebpf"])
    assert code == 0
    rows = rows_by_label(document)
    assert rows["preload"]["not_applicable"] == "static binary: LD_PRELOAD not applied"
    assert rows["preload"]["exact"] is None
    assert rows["ebpf"]["exact"] is True and rows["ebpf"]["captured"] == [300]


@needs_referee
def test_a_technique_that_follows_children_is_held_to_the_tree_and_another_to_the_launched_process(tmp_path):
    forking = ["perl", "-e", "syswrite(STDOUT, qq(a\\n)) for 1..200; if (fork() == 0) "
                             "{ syswrite(STDOUT, qq(b\\n)) for 1..50; exit 0 } wait"]
    code, document = measured(tmp_path, forking, available("ptrace", "ebpf"))
    assert code == 0
    rows = rows_by_label(document)
    assert rows["ptrace"]["writes"] == [250] and rows["ptrace"]["captured"] == [250] and rows["ptrace"]["exact"]
    assert rows["ebpf"]["captured"] == rows["ebpf"]["expected"] == [200] and rows["ebpf"]["exact"]
    tallies = document["runs"][-1]["runs"][0]["tallies"]
    assert sorted(t["writes"] for t in tallies) == [50, 200]


@needs_referee
def test_another_descriptor_is_watched_and_stdout_is_not(tmp_path):
    program = [sys.executable, "-c", "import os\nfd = os.open('/dev/null', os.O_WRONLY)\nassert fd == 3, fd\n"
               "for _ in range(400): os.write(fd, b'scissors\\n')\nos.write(1, b'not watched\\n')"]
    methods = available("ebpf", "ptrace", "unotify", "preload", "strace", "bpftrace")
    code, document = measured(tmp_path, program, methods, "--fd", "3")
    assert code == 0  # the program's own assertion held: the preload ring took no low number
    for method, row in rows_by_label(document).items():
        assert row["captured"] == row["expected"] == [400] and row["exact"], (method, row)


@needs_referee
@pytest.mark.parametrize("argv, flags, said", [
    (["no-such-program-anywhere"], [], "ERROR: no such program: no-such-program-anywhere"),
    (["sh", "-c", "echo broken >&2; exit 3"], [], "exited with status 3 unobserved (its last words: 'broken')"),
    (["true"], [], "made no write() to descriptor 1"),
    (["sh", "-c", "echo x; sleep 30 & sleep 30"], ["--timeout", "1"], "ran longer than 1 s unobserved: killed"),
    (["true"], ["--fd", "x"], "--fd must be a descriptor number, got 'x'"),
    (["true"], ["--moves", "5"], "--moves describes the opponent"),
])
def test_bad_input_is_one_clear_line_and_leaves_nothing_behind(capsys, argv, flags, said):
    before = loaded_bpf_program_ids()
    code = main(["run", "--method", "ebpf", "--repeats", "1", *flags, "--", *argv])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and said in error[0], error
    assert not wait_until_unloaded(loaded_bpf_program_ids() - before)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "30"]]


@needs_referee
def test_a_program_that_writes_a_different_number_of_times_each_run_is_said_to(tmp_path, capsys):
    # Each run writes one time more than the one before (a counter in a file): no two runs alike.
    counter = tmp_path / "runs"
    counter.write_text("0")
    program = [sys.executable, "-c", f"import os, pathlib\np = pathlib.Path({str(counter)!r})\n"
               "n = int(p.read_text()) + 1\np.write_text(str(n))\nfor _ in range(100 + n): os.write(1, b'rock\\n')"]
    counter.chmod(0o666)
    tmp_path.chmod(0o777)
    code, document = measured(tmp_path, program, ["ebpf"])
    assert code == 0
    # Counted by the referee: the first, checking run (101), bare with it (103) and ebpf (104);
    # the bare run without it (102) has no count.
    assert document["writes_seen"] == [101, 103, 104]
    assert "CMD did not write the same number of times in every run" in capsys.readouterr().out
    row = rows_by_label(document)["ebpf"]
    assert row["exact"] and row["captured"] == row["expected"]  # each run held to its own count
