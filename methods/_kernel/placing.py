"""Where an attached target runs: every thread of a running process moved onto the target's
CPUs for the observation, and put back where it was after."""
from __future__ import annotations

import os

from methods.protocol import ObserverError


class RunningTargetPlacement:
    """Mixed into Observer: target_cpus and _affinity_before are the Observer's."""

    def _place_running(self, pid: int) -> None:
        """Move every thread of a running target onto target_cpus (the threads it starts later
        inherit it), keeping what each had to put it back at close(). The threads are listed
        again until a listing finds none unmoved: one started by a thread not yet moved would
        otherwise run where it was."""
        while new := _threads_of(pid) - set(self._affinity_before):
            for tid in new:
                try:
                    self._affinity_before[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, self.target_cpus)
                except ProcessLookupError:
                    self._affinity_before.setdefault(tid, set())  # ended meanwhile: not listed again
                except PermissionError:
                    self._restore_placement_of(pid)
                    raise ObserverError(f"cannot move PID {pid} to CPU {sorted(self.target_cpus)}: permission "
                                        "denied (needs CAP_SYS_NICE); watch it with --placement free") from None

    def _restore_placement(self) -> None:
        self._restore_placement_of(self.pid)

    def _restore_placement_of(self, pid: int) -> None:
        """Every thread of the attached target back where it was; one started meanwhile gets
        what its process's first thread had. Listed again until a listing finds none left to
        put back, as in _place_running."""
        if not self._affinity_before:
            return
        leader = self._affinity_before.get(pid) or next((cpus for cpus in self._affinity_before.values() if cpus),
                                                        None)
        done: set[int] = set()
        while todo := (_threads_of(pid) | set(self._affinity_before)) - done:
            for tid in todo:
                cpus = self._affinity_before.get(tid) or leader
                try:
                    if cpus:
                        os.sched_setaffinity(tid, cpus)
                except ProcessLookupError:
                    pass  # ended
            done |= todo
        self._affinity_before = {}


def _threads_of(pid: int) -> set[int]:
    """The thread IDs of a process now (none once it is gone)."""
    try:
        return {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
    except FileNotFoundError:
        return set()
