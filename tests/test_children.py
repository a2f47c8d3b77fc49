"""Watching changes nothing for the target's children: the same forking program
(tests/forking_target.c: a fork()ed child, a grandchild, a vfork()ed child that execs a shell)
runs unwatched and under every backend, and the bytes on stdout and stderr (which carry every
write()'s return value and errno), the exit status and what a child wrote into a file must be
identical. The ptrace seccomp strategy is the one at risk: its filter is inherited, and a child
that met it with no tracer would get ENOSYS."""
import subprocess

import pytest

from bench.run.targets import ROOT
from methods import REGISTRY
from tests.conftest import run_watched

SOURCE = ROOT / "tests" / "forking_target.c"
VARIANTS = [(name, {}) for name, cls in sorted(REGISTRY.items()) if not cls.baseline] + \
    [("ptrace", {"strategy": "step"})]


@pytest.fixture(scope="module")
def forking_program(tmp_path_factory):
    program = tmp_path_factory.mktemp("forking") / "forking_target"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(program), str(SOURCE)], check=True)
    return str(program)


def unwatched(program: str, file) -> tuple:
    result = subprocess.run([program, str(file)], capture_output=True, timeout=60)
    return result.returncode, result.stdout, result.stderr, file.read_text()


def watched(method: str, options: dict, program: str, file) -> tuple[tuple, list]:
    with REGISTRY[method](**options) as observer:
        outcome, events = run_watched(observer, [program, str(file)])
        target = observer.pid
    return (*outcome, file.read_text()), [(event.pid == target, event.raw) for event in events]


@pytest.mark.parametrize("method,options", VARIANTS, ids=[f"{m}-{'-'.join(o.values()) or 'default'}"
                                                           for m, o in VARIANTS])
def test_children_behave_the_same_watched_and_unwatched(method, options, forking_program, tmp_path):
    reason = REGISTRY[method].unavailable_reason()
    if reason:
        pytest.skip(f"{method} unavailable: {reason}")
    expected = unwatched(forking_program, tmp_path / "plain.txt")
    assert expected[0] == 3 and b"child exited 20" in expected[2] and b"errno 0" in expected[2]
    outcome, events = watched(method, options, forking_program, tmp_path / "watched.txt")
    assert outcome == expected, f"{method} {options} changed what the program or its children observed"
    # No event is taken for the target's when another process wrote it.
    target_writes = {raw for own, raw in events if own}
    assert target_writes <= {b"rock 0 0\n", b"paper 0 4\n"}, events


def test_ptrace_seccomp_follows_the_children_and_names_their_writes_as_theirs(forking_program, tmp_path):
    if REGISTRY["ptrace"].unavailable_reason():
        pytest.skip("ptrace unavailable")
    _, events = watched("ptrace", {"strategy": "seccomp"}, forking_program, tmp_path / "f.txt")
    assert sorted(raw for own, raw in events if own) == [b"paper 0 4\n", b"rock 0 0\n"]
    # Each child's write stopped at the filter and was seen, as the child's own (the shell's
    # `echo ... >&2` too: it writes to descriptor 1, pointed at stderr).
    assert sorted(raw for own, raw in events if not own) == [b"echo status 0\n", b"paper 0 1\n", b"rock 0 3\n",
                                                            b"scissors 0 2\n"]
