"""What a probe is: a measurement made once per technique variant (or once per machine), outside
the sweep's groups of rows. Each module of bench/probes/ declares one PROBE and a run(lineup,
context) returning the entries of its results section."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from methods import REGISTRY


@dataclass(frozen=True)
class Probe:
    """name: as techniques name it in SweepSpec.more and not_probed, and the results section it
    fills unless `section` says another; applies: whether it can run against a technique at
    all; attaching: it watches a running opponent, so a technique's attach_options (ptrace:
    step) are part of its variant; order: where it runs in the sweep."""

    name: str
    applies: Callable[[type], bool]
    attaching: bool = False
    order: int = 100
    what: str = ""  # a phrase for --plan
    section: str = ""

    @property
    def fills(self) -> str:
        return self.section or self.name

    def lineup(self) -> list[tuple[str, dict]]:
        """The variants it measures: every technique it applies to, in its sweep variant, and
        the further variants techniques name for it."""
        found = []
        for _, cls in sorted(REGISTRY.items()):
            if cls.baseline:
                continue
            options = cls.sweep.options | (cls.attach_options if self.attaching else {})
            if self.applies(cls) and self.name not in cls.sweep.not_probed:
                found.append((cls.method, options))
            found += [(cls.method, more) for more in cls.sweep.more.get(self.name, ())]
        return found


def everyone(cls) -> bool:
    return True


def nobody(cls) -> bool:
    """A probe a technique opts into by naming variants for it (SweepSpec.more), or one made once
    per machine."""
    return False


def can_attach(cls) -> bool:
    return cls.can_attach


@dataclass
class Context:
    """What a probe's run() gets from the sweep: its repeats and placements, and its progress."""

    repeats: int
    placements: tuple[str, ...]
    phase: Callable[[str, str], None] = lambda text, kind: None  # a new phase: its words, its kind
    step: Callable[[str], None] = lambda text: None  # one step done
    skipped: list[dict] = field(default_factory=list)  # what could not run here, with why

    def each(self, lineup: list[tuple[str, dict]], text: str, measure, kind: str = "") -> list[dict]:
        """measure(method, options) for each variant of the lineup, a phase each. A variant whose
        measurement fails is recorded in skipped with the error, and the others go on: one
        probe's failure never costs the sweep what it measured before."""
        found = []
        for method, options in lineup:
            self.phase(text.format(method, options), kind or text.split(" ")[0])
            try:
                found.append(measure(method, options))
            except Exception as error:  # noqa: BLE001 (any failure of one variant is reported, not fatal)
                self.failed(f"{kind or text.split(' ')[0]} of {method} {options}", error, method, options)
            self.step(f"{kind or text.split(' ')[0]} {method}")
        return found

    def failed(self, what: str, error: Exception, method: str = "(probe)", options: dict | None = None) -> None:
        self.skipped.append({"method": method, "options": options or {},
                             "reason": f"{what} failed: {type(error).__name__}: {error}"})
