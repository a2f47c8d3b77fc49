"""What a technique can be told, typed: each technique declares its Options, a frozen dataclass
whose fields are option()s, and each default is written once, there. Everything else is derived
from it: the command line's --flags (Observer.cli_options), the check of a value before anything
runs (Observer.check_options), the constructor's defaults (Observer.__init__ makes its Options)
and the results' default_options.

An option several techniques share (capture, wakeup, poll_ms, ring_mb, spin_us) is made by one
function below, so it means one thing wherever it appears; Observer checks that at registration.
"""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, Callable, Mapping

from methods._kernel.bpf_ring import PAGE_SIZE
from methods.protocol import ObserverError

# Spinning before a sleep, for an observer on CPUs of its own: it looks for the next event (a
# tracer's stop, a ring's record) for up to --spin-us before it sleeps. One that comes meanwhile
# needs no wake-up, which on a VM means waking an idle virtual CPU: tens of µs of delay, and of
# a stopped target's time. It costs the observer's CPU while it spins, so it needs placement
# split: on the target's CPU it would take the target's time.
MAX_SPIN_US = 10_000
# A ring consumer live in placement split spins this long before it sleeps: four periods of the
# article's 20,000 moves/s, so at that rate it seldom sleeps and a move seldom waits for an idle
# virtual CPU to wake.
LIVE_SPIN_US = 200


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def option(default: Any, help: str, *, choices: tuple = (), type: type | None = None,
           bounds: tuple[int, int] | None = None, valid: Callable[[Any], str | None] | None = None,
           label: str | None = None, flag: bool = False) -> Any:
    """One field of an Options: its default, its help, and what a value must be. choices: the
    values allowed (besides a default of None, "not chosen"); bounds: an inclusive range of a
    number; valid(value): what is wrong with it in words, or None. label: a format naming the
    variant in results when the option is set ("spin {} µs"); flag: a boolean given bare."""
    meta = {"help": help, "choices": choices, "type": type, "bounds": bounds, "valid": valid,
            "label": label, "flag": flag}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """A technique with no options; the base of every technique's own."""

    def __post_init__(self) -> None:
        for each in fields(self):
            problem = _problem(each, getattr(self, each.name))
            if problem:
                raise ObserverError(problem)
        self.check()

    def check(self) -> None:
        """Raise ObserverError for a combination of values this technique cannot use."""

    @classmethod
    def of(cls, given: Mapping[str, Any]) -> Options:
        """The options given by name, the rest at their defaults; a name this technique does not
        take is refused, naming the ones it does."""
        known = [each.name for each in fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            takes = ", ".join(flag_name(name) for name in known) or "none"
            raise ObserverError(f"unknown option {', '.join(flag_name(name) for name in unknown)}; "
                                f"this technique takes: {takes}")
        return cls(**given)

    @classmethod
    def flags(cls) -> dict[str, dict]:
        """Option name -> its command-line settings: default, help, and choices, type, label and
        flag where it has them (the shape the CLI and the results' describe() read)."""
        found = {}
        for each in fields(cls):
            meta = each.metadata
            spec = {"default": each.default, "help": meta["help"]}
            for key in ("choices", "type", "label", "flag"):
                if meta[key]:
                    spec[key] = meta[key]
            found[each.name] = spec
        return found

    def as_dict(self) -> dict[str, Any]:
        return {each.name: getattr(self, each.name) for each in fields(self)}


def _problem(each: Field, value: Any) -> str | None:
    meta, name = each.metadata, flag_name(each.name)
    if value is None and each.default is None:
        return None  # not chosen
    if meta["choices"] and value not in meta["choices"]:
        return f"unknown {name} {value!r}; choose one of {', '.join(map(str, meta['choices']))}"
    if meta["flag"] and not isinstance(value, bool):
        return f"{name} is on or off, not {value!r}"
    if meta["type"] is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"{name} must be a whole number, got {value!r}"
    if meta["bounds"] and not meta["bounds"][0] <= value <= meta["bounds"][1]:
        return f"{name} must be between {meta['bounds'][0]} and {meta['bounds'][1]}, got {value}"
    return meta["valid"](value) if meta["valid"] else None


# --- the options several techniques share -----------------------------------------------------
def capture() -> Any:
    """The floor of a mechanism (`--capture count`): the same hook, the same filter, the writes
    only counted, nothing copied or sent."""
    return option(None, "count: only count the writes, copying nothing: the mechanism's floor "
                        "(default: full capture)", choices=("full", "count"))


def wakeup() -> Any:
    """How a ring-buffer backend's consumer learns of new events:
      poll      nothing wakes it; it drains every --poll-ms: no wake-up work in the target's
                write path, the cheapest flat out, and a delay of up to one period
      adaptive  the producer wakes it when it had caught up and sleeps: a short delay live,
                some work in the target's write path when events are sparse"""
    return option("poll", "adaptive: wake the consumer when it sleeps (live); poll: it drains every "
                          "--poll-ms (cheapest flat out)", choices=("adaptive", "poll"))


def poll_ms() -> Any:
    return option(10, "consumer polling period in ms (also the longest adaptive sleep)", type=int,
                  bounds=(1, 1000))


def spin_us() -> Any:
    return option(0, "before sleeping, look for the next event for up to this many µs, so one "
                     "that comes soon needs no wake-up of the observer's CPU; costs that CPU while "
                     f"it spins; needs --placement split (0 = never spin, up to {MAX_SPIN_US})",
                  type=int, bounds=(0, MAX_SPIN_US), label="spin {} µs")


def _whole_pages_power_of_two(ring_mb: int) -> str | None:
    pages = ring_mb * 1024 * 1024 // PAGE_SIZE
    if ring_mb < 1 or pages & (pages - 1):
        return f"--ring-mb must be a power of two, at least 1; got {ring_mb}"
    return None


def ring_mb() -> Any:
    """A BPF ring buffer's size: the kernel wants a power of two of pages."""
    return option(64, "ring buffer size in MiB, a power of two", type=int, valid=_whole_pages_power_of_two)
