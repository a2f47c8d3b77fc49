"""zpoline rewrites its target's code: these tests read the rewritten text back out of the live
process and hold it against an independent reading of the files (objdump, which decodes each
function from its symbol), and check that the machine-wide vm.mmap_min_addr is lowered only while the hook maps its
page, and put back after a killed run. tests/test_inprocess.py runs the special system calls
under it and under SUD."""
import os
import re
import signal
import subprocess
import sys

import pytest
from elftools.elf.elffile import ELFFile

from bench.run.targets import ROOT
from methods.preload import PreloadObserver
from methods._kernel.process import SKIP_CAPABILITY_PRECHECK
from methods.zpoline import MMAP_MIN_ADDR, SAVED_MIN_ADDR, ZpolineObserver
from tests.conftest import OPPONENT_CGO, wait_for_state

pytestmark = pytest.mark.skipif(bool(ZpolineObserver.unavailable_reason()),
                                reason=f"zpoline unavailable: {ZpolineObserver.unavailable_reason()}")
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
SYSCALL, CALL_RAX = b"\x0f\x05", b"\xff\xd0"
INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)")


def syscall_offsets(path: str) -> set[int]:
    """File offsets of every syscall/sysenter instruction objdump decodes in the file's code,
    each function decoded from its own symbol."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-w", path], capture_output=True,
                             text=True, check=True).stdout
    addresses = [int(m.group(1), 16) for m in map(INSTRUCTION.match, listing.splitlines())
                 if m and m.group(2) in ("syscall", "sysenter")]
    with open(path, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
    return {a - s["p_vaddr"] + s["p_offset"] for a in addresses for s in loads
            if s["p_vaddr"] <= a < s["p_vaddr"] + s["p_filesz"]}


def rewritten_offsets(pid: int, path: str) -> tuple[set[int], list[int]]:
    """(file offsets where the live process's text holds call *%rax over the file's syscall,
    file offsets of any other byte that differs), over the file's executable mappings."""
    real = os.path.realpath(path)
    rewritten, other = set(), []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as memory, open(real, "rb") as file:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or fields[5] != real or "x" not in fields[1]:
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            offset = int(fields[2], 16)
            file.seek(offset)
            on_disk = file.read(end - start)
            memory.seek(start)
            in_memory = memory.read(len(on_disk))
            at = 0
            while at < len(on_disk):
                if in_memory[at] == on_disk[at]:
                    at += 1
                elif on_disk[at:at + 2] == SYSCALL and in_memory[at:at + 2] == CALL_RAX:
                    rewritten.add(offset + at)
                    at += 2
                else:
                    other.append(offset + at)
                    at += 1
    return rewritten, other


def stopped_under_zpoline(argv: list[str]) -> list:
    """Launch argv under zpoline; once it has stopped itself, check its own text and libc's,
    then let it go on, and check it wrote exactly its moves."""
    with ZpolineObserver() as observer:
        process = observer.launch(argv, stdout=subprocess.DEVNULL)
        observer.release()  # returns once the hook has mapped its page and rewritten the text
        events = []
        for batch in observer.batches():
            events.append(batch)
            if sum(b.size for b in events):  # its first move: it stops, or waits, after it
                break
        wait_for_state(observer.pid, "T")  # a SIGCONT before its SIGSTOP would be lost
        for path in (argv[0], LIBC):
            rewritten, other = rewritten_offsets(observer.pid, path)
            assert other == [], f"{path}: bytes changed that were no syscall instruction: {other[:10]}"
            assert rewritten == syscall_offsets(path), f"{path}: rewritten sites differ from objdump's"
            assert rewritten, f"{path}: nothing rewritten"
        os.kill(observer.pid, signal.SIGCONT)
        events += list(observer.batches())
        assert process.wait(timeout=60) == 0
    return events


def test_exactly_the_system_call_instructions_of_a_c_program_and_libc_are_rewritten(special_calls_program):
    events = stopped_under_zpoline([special_calls_program, "--stop"])
    assert sum(batch.size for batch in events) == 3


def test_exactly_the_system_call_instructions_of_the_cgo_opponent_are_rewritten():
    # -start usr1: it makes its first write (a line on stderr: not watched) and waits
    argv = [str(OPPONENT_CGO), "-start", "usr1", "-moves", "50"]
    with ZpolineObserver() as observer:
        process = observer.launch(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        observer.release()
        assert b"waiting for SIGUSR1" in process.stderr.readline()
        for path in (argv[0], LIBC):
            rewritten, other = rewritten_offsets(observer.pid, path)
            assert other == [] and rewritten == syscall_offsets(path) and rewritten, path
        os.kill(observer.pid, signal.SIGUSR1)
        assert sum(batch.size for batch in observer.batches()) == 50
        assert process.wait(timeout=60) == 0
        process.stderr.close()


def test_mmap_min_addr_is_lowered_only_until_the_hook_has_mapped_its_page(special_calls_program):
    before = MMAP_MIN_ADDR.read_text()
    with ZpolineObserver() as observer:
        observer.launch([special_calls_program, "--stop"], stdout=subprocess.DEVNULL)
        assert MMAP_MIN_ADDR.read_text() == "0\n" and SAVED_MIN_ADDR.read_text() == before
        observer.release()
        # the target is alive, its page mapped: the machine has its setting back already
        assert MMAP_MIN_ADDR.read_text() == before and not SAVED_MIN_ADDR.exists()
        with open(f"/proc/{observer.pid}/maps") as maps:
            assert maps.readline().startswith("00000000-00001000 --xp")
        # resumed only once it has stopped itself after its first move: a SIGCONT sent
        # before that SIGSTOP would be lost, and the program would stay stopped for good
        wait_for_state(observer.pid, "T")
        os.kill(observer.pid, signal.SIGCONT)
        assert sum(batch.size for batch in observer.batches()) == 3
        assert 0 < observer.facts()["mmap_min_addr_lowered_s"] < 20
    assert MMAP_MIN_ADDR.read_text() == before


def test_mmap_min_addr_is_put_back_when_the_program_never_loads_the_hook_or_the_launch_fails(monkeypatch):
    before = MMAP_MIN_ADDR.read_text()
    with ZpolineObserver() as observer:
        process = observer.launch(["/nonexistent/program"], stderr=subprocess.DEVNULL)
        observer.release()  # the exec fails: the target ends without ever mapping the page
        assert MMAP_MIN_ADDR.read_text() == before and not SAVED_MIN_ADDR.exists()
        assert process.wait(timeout=60) == 127
    monkeypatch.setattr(PreloadObserver, "launch", lambda *args, **kwargs: os.kill(os.getpid(), 0) or 1 / 0)
    with ZpolineObserver() as observer, pytest.raises(ZeroDivisionError):
        observer.launch(["/bin/true"])
    assert MMAP_MIN_ADDR.read_text() == before and not SAVED_MIN_ADDR.exists()


def test_a_lowered_mmap_min_addr_left_by_a_killed_run_is_found_and_put_back():
    before = MMAP_MIN_ADDR.read_text()
    try:
        # what a run SIGKILLed between lowering it and putting it back leaves
        SAVED_MIN_ADDR.write_text(before)
        MMAP_MIN_ADDR.write_text("0\n")
        assert ZpolineObserver.leftovers() == {f"vm.mmap_min_addr = 0, lowered by tapbench from {before.strip()}"}
        assert ZpolineObserver.clean_leftovers() == [f"put vm.mmap_min_addr back to {before.strip()}"]
        assert MMAP_MIN_ADDR.read_text() == before and ZpolineObserver.leftovers() == set()
    finally:
        MMAP_MIN_ADDR.write_text(before)
        SAVED_MIN_ADDR.unlink(missing_ok=True)


def without_capabilities(*argv: str) -> subprocess.CompletedProcess:
    """argv run as root with an empty capability bounding set, tapbench's own pre-checks off:
    the kernel decides."""
    return subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=os.environ | {SKIP_CAPABILITY_PRECHECK: "1"})


def test_without_cap_sys_rawio_a_launch_fails_in_one_line_and_changes_nothing():
    before = MMAP_MIN_ADDR.read_text()
    result = without_capabilities(sys.executable, "-m", "bench", "run", "--method", "zpoline", "--moves", "100",
                                  "--repeats", "1", "--placement", "free")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "ERROR: cannot set /proc/sys/vm/mmap_min_addr to 0 for the trampoline (Operation not permitted): "
        "zpoline needs root with CAP_SYS_RAWIO"), result.stderr
    assert MMAP_MIN_ADDR.read_text() == before and ZpolineObserver.leftovers() == set()


def test_a_clean_up_that_cannot_put_mmap_min_addr_back_says_so_and_lets_the_run_go_on():
    before = MMAP_MIN_ADDR.read_text()
    try:
        # as if a killed run had lowered it from another value than today's (one equal to it
        # would need no write, and the clean-up without CAP_SYS_RAWIO would not be tested)
        SAVED_MIN_ADDR.write_text("32768\n" if before.strip() == "65536" else "65536\n")
        result = without_capabilities(sys.executable, "-c", "from methods.zpoline import ZpolineObserver; "
                                      "print(ZpolineObserver.clean_leftovers())")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("['could not put vm.mmap_min_addr back from /run/tapbench-mmap-min-addr")
        assert MMAP_MIN_ADDR.read_text() == before and SAVED_MIN_ADDR.exists()
    finally:
        SAVED_MIN_ADDR.unlink(missing_ok=True)
