"""The 'none' observer: runs the target unobserved, so the bare cost goes through the same path."""
from __future__ import annotations

from typing import Iterator

from methods.base import Observer, wait_until_exited

from methods.protocol import MoveEvent


class NoObserver(Observer):
    method = "none"
    baseline = True
    can_attach = True
    description = "no observation: the bare cost of the target"
    default_placement = "free"

    def _observe(self, pid: int) -> None:
        pass

    def events(self) -> Iterator[MoveEvent]:
        wait_until_exited(self)
        yield from ()
