"""Bad input gets one clear line and a non-zero exit, never a traceback."""
import json
import os
import shutil
import subprocess
import sys
import time

import psutil
import pytest

from bench.run.targets import ROOT

from bench.document.rows import Document, Row
from bench.run.results import RESULTS_FORMAT, ResultsError, write_json


def tapbench(*argv):
    return subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("argv,message", [
    (["run", "--method", "ebpf", "--moves", "-5"], "--moves must be between 1"),
    (["run", "--method", "ebpf", "--moves", "lots"], "--moves must be a whole number"),
    (["run", "--method", "ebpf", "--moves", "10", "--rate", "99999999999"], "--rate must be between"),
    (["run", "--method", "ebpf", "--goroutines", "0"], "--goroutines must be between 1"),
    (["run", "--method", "none", "--hook", "raw"], "--hook applies to --method ebpf only"),
    (["run", "--method", "ebpf", "--strategy", "step"], "--strategy applies to --method ptrace only"),
    (["run", "--method", "nosuch"], "unknown method nosuch"),
    (["run", "--method", "ebpf,ebpf"], "names a method twice"),
    (["run", "--method", "ebpf", "--ring-mb", "3", "--ebpf"], "--ring-mb must be a power of two"),
    (["watch", "--method", "ebpf", "--pid", "999999999"], "--pid must be between"),
    (["watch", "--method", "ebpf"], "give one of --pid PID, --name NAME or -- CMD"),
    (["watch", "--method", "ebpf", "--name", "no-such-opponent-xyz"], "no running process named"),
    (["watch", "--method", "ebpf", "--pid", "1", "--wait", "3"], "--wait applies to --name only"),
    (["run", "--method", "ebpf", "--placement", "everywhere"], "invalid choice"),
    (["report", "--json", "/nonexistent/latest.json"], "cannot read /nonexistent/latest.json"),
])
def test_user_errors_are_one_line(argv, message):
    result = tapbench(*argv)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("ERROR: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error, and 'attaching to' at most


@pytest.mark.parametrize("argv", [["run", "--method", "ebpf", "--target", "rust"], ["watch", "--method", "nosuch"]])
def test_unknown_choices_are_refused_by_the_parser(argv):
    result = tapbench(*argv)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_ebpf_flag_prints_the_specialised_program():
    result = tapbench("watch", "--method", "ebpf", "--hook", "tracepoint", "--pid", "1", "--ebpf")
    assert result.returncode == 0
    assert "#define TARGET_TGID 1\n" in result.stdout
    assert "TRACEPOINT_PROBE(syscalls, sys_enter_write)" in result.stdout
    assert "#define HOOK_RAW_SYS_ENTER" not in result.stdout


def test_results_from_a_newer_format_are_refused(tmp_path):
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"format": RESULTS_FORMAT + 1, "metadata": {}, "runs": []}))
    with pytest.raises(ResultsError, match="newer than this tapbench"):
        Document.load(path)
    path.write_text("{not json")
    with pytest.raises(ResultsError, match="is not JSON"):
        Document.load(path)


def test_results_are_written_atomically_and_read_back(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, [Row(method="none")], meta={"date": "today"})
    assert Document.load(path).runs == [Row(method="none")]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_a_zombie_pid_is_refused():
    zombie = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        result = tapbench("watch", "--method", "ptrace", "--strategy", "step", "--pid", str(zombie.pid))
        assert result.returncode == 2 and f"PID {zombie.pid} is a zombie" in result.stderr
    finally:
        zombie.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="attaching with ptrace to a process needs root here")
def test_a_pid_that_is_not_the_opponent_is_watched_with_a_note():
    # `sh` writes one line that is not a move, then exits: the watch ends with it.
    other = subprocess.Popen(["sh", "-c", "sleep 3; echo rock and roll"], stdout=subprocess.DEVNULL)
    try:
        result = tapbench("watch", "--method", "ptrace", "--strategy", "step", "--pid", str(other.pid))
        assert result.returncode == 0, result.stderr
        assert f"note: PID {other.pid} (sh) is not tapbench's opponent" in result.stderr
        # Any opponent's writes are decoded: "rock and roll" holds the word rock.
        assert "1 moves (rock 1)" in result.stdout and "opponent played: rock" in result.stdout
    finally:
        other.kill()
        other.wait()


def test_sweep_is_bench_and_report_redraws_the_plots(tmp_path):
    assert "--quick" in tapbench("sweep", "--help").stdout
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "machines", results / "machines")
    result = tapbench("report", "--results", str(results))
    assert result.returncode == 0, result.stderr
    assert (results / "overhead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme, page = (results / "README.md").read_text(), (results / "report.html").read_text()
    assert "(report.html#plots)" in readme and "(report.html#machines)" in readme
    assert 'alt="Overhead per move, log scale" src="data:image/png;base64,' in page and '<section id="machines">' in page
    for machine in (results / "machines").iterdir():  # every machine keeps its own detail
        assert all((machine / name).exists() for name in ("README.md", "report.html", "overhead.png"))


def test_a_report_of_a_missing_json_rewrites_no_stored_readme():
    readmes = sorted((ROOT / "results" / "machines").glob("*/README.md"))
    before = {path: path.stat().st_mtime_ns for path in readmes}
    assert readmes and tapbench("report", "--json", "/nonexistent/latest.json").returncode == 2
    assert {path: path.stat().st_mtime_ns for path in readmes} == before
