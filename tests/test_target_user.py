"""A program tapbench launches runs as the user who invoked it (under sudo, SUDO_UID), or as
--user says; root only when asked for. The observer keeps the privileges it needs."""
import json
import os
import subprocess
import sys

import pytest

from bench.run.targets import ROOT
from methods import REGISTRY

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
NOBODY = 65534
OBSERVERS = sorted(name for name, cls in REGISTRY.items() if not cls.baseline)


def tapbench(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env=os.environ | (env or {}))


@pytest.mark.parametrize("method", OBSERVERS)
def test_a_target_launched_through_sudo_runs_as_the_invoking_user(method):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    result = tapbench("watch", "--method", method, "--placement", "free", "--", "/bin/sh", "-c",
                      "echo uid $(id -u) gid $(id -g) >&2; echo rock",
                      env={"SUDO_UID": str(NOBODY), "SUDO_GID": str(NOBODY)})
    assert result.returncode == 0, result.stderr
    assert f"uid {NOBODY} gid {NOBODY}" in result.stderr and "as nobody:" in result.stderr


def test_root_only_when_asked_for_and_the_choice_is_checked():
    asked = tapbench("watch", "--method", "ebpf", "--user", "root", "--", "/bin/sh", "-c", "id -u >&2",
                     env={"SUDO_UID": str(NOBODY)})
    assert asked.returncode == 0 and "\n0\n" in f"\n{asked.stderr}", asked.stderr
    unknown = tapbench("watch", "--method", "ebpf", "--user", "no-such-user-here", "--", "true")
    assert unknown.returncode == 2 and unknown.stderr == "ERROR: --user: no user named 'no-such-user-here' on this machine\n"
    attach = tapbench("watch", "--method", "ebpf", "--user", "nobody", "--pid", "1")
    assert attach.returncode == 2 and "--user applies to a launched command" in attach.stderr


def test_run_records_who_the_target_ran_as(tmp_path):
    out = tmp_path / "run.json"
    result = tapbench("run", "--method", "ptrace", "--user", "nobody", "--moves", "2000", "--repeats", "1",
                      "--json", str(out))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())["runs"]
    assert row["target_user"] == "nobody" and row["exact"] is True
    assert row["self_checks"][0]["uid"] == NOBODY  # the opponent's own word
