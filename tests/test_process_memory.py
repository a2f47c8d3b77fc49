"""ProcessMemory, how ptrace and unotify read a write's buffer: another process's memory
through /proc/PID/mem, across that process's exec."""
import os
import subprocess
import sys

from methods._kernel.process import ProcessMemory

# Prints the address of a buffer holding its first argument; told "exec" on stdin, execs itself
# with the remaining arguments (its PID stays, its memory does not).
SHOW_THEN_EXEC = """
import ctypes, os, sys
held = ctypes.create_string_buffer(sys.argv[1].encode())
print(ctypes.addressof(held), flush=True)
if sys.stdin.readline() == "exec\\n" and len(sys.argv) > 2:
    os.execv(sys.executable, [sys.executable, __file__, *sys.argv[2:]])
"""


def test_reads_a_buffer_then_the_same_pid_after_its_exec_and_nothing_where_unmapped(tmp_path):
    script = tmp_path / "show_then_exec.py"
    script.write_text(SHOW_THEN_EXEC)
    child = subprocess.Popen([sys.executable, str(script), "rock", "paper"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    memory = ProcessMemory()
    try:
        address = int(child.stdout.readline())
        assert memory.read(child.pid, address, 4) == b"rock"
        assert memory.read(child.pid, 0x10, 4) == b""  # unmapped
        child.stdin.write("exec\n")
        child.stdin.flush()
        address = int(child.stdout.readline())
        # The descriptor opened before the exec shows the old program: opened again.
        assert memory.read(child.pid, address, 5) == b"paper"
    finally:
        child.kill()
        child.wait()
    assert memory.read(child.pid, address, 5) == b""  # gone
    memory.close()


def test_a_process_whose_mem_file_refuses_us_is_read_with_process_vm_readv(tmp_path, monkeypatch):
    """Another user's /proc/PID/mem admits only its owner, where process_vm_readv needs only
    ptrace access (CAP_SYS_PTRACE): a tracer with just that must still read the buffer."""
    script = tmp_path / "show_then_exec.py"
    script.write_text(SHOW_THEN_EXEC)
    child = subprocess.Popen([sys.executable, str(script), "scissors"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    real_open = os.open

    def refusing_mem_files(path, *args, **kwargs):
        if str(path).endswith("/mem"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_mem_files)
    memory = ProcessMemory()
    try:
        address = int(child.stdout.readline())
        assert memory.read(child.pid, address, 8) == b"scissors"
        assert memory.read(child.pid, 0x10, 4) == b""
    finally:
        child.kill()
        child.wait()
        memory.close()
