"""Each technique's options are one typed declaration (methods/options.py): the flags, the checks,
the constructor's defaults and the results' default_options all come from it."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields

import pytest

from methods import REGISTRY
from methods import options as shared
from methods.base import Observer
from methods.ebpf import EbpfObserver
from methods.options import MAX_SPIN_US, Options, option
from methods.protocol import ObserverError

TECHNIQUES = sorted(REGISTRY)


@pytest.mark.parametrize("method", TECHNIQUES)
def test_no_constructor_writes_a_default_of_its_own(method):
    """A default lives in the Options only: a constructor that took `ring_mb=64` would be a
    second place to change, and could drift from the flag's."""
    for klass in REGISTRY[method].__mro__:
        if "__init__" in vars(klass) and issubclass(klass, Observer):
            parameters = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
            assert all(p.kind is p.VAR_KEYWORD for p in parameters), f"{klass.__name__}.__init__ takes {parameters}"


@pytest.mark.parametrize("method", TECHNIQUES)
def test_flags_and_described_defaults_are_the_options_fields(method):
    cls = REGISTRY[method]
    declared = {each.name: each.default for each in fields(cls.Options)}
    assert {name: spec["default"] for name, spec in cls.cli_options.items()} == declared
    assert cls.describe()["default_options"] == declared
    assert cls.Options.of({}).as_dict() == declared  # every default is a valid value


def test_an_unknown_option_is_refused_naming_what_the_technique_takes():
    with pytest.raises(ObserverError, match=r"unknown option --ring-mb; this technique takes: --strategy, "
                                            r"--exitkill, --capture, --spin-us"):
        REGISTRY["ptrace"].check_options(ring_mb=64)
    with pytest.raises(ObserverError, match="this technique takes: none"):
        REGISTRY["none"].check_options(capture="count")


@pytest.mark.parametrize("method, options, refusal", [
    ("ebpf", {"hook": "kprobe"}, "unknown --hook 'kprobe'; choose one of raw, tracepoint"),
    ("ebpf", {"ring_mb": 3}, "--ring-mb must be a power of two"),
    ("ebpf", {"poll_ms": 0}, "--poll-ms must be between 1 and 1000, got 0"),
    ("uprobe", {"spin_us": MAX_SPIN_US + 1}, f"--spin-us must be between 0 and {MAX_SPIN_US}"),
    ("preload", {"ring_slots": 3}, "--ring-slots must be a power of two"),
    ("preload", {"poll_ms": "10"}, "--poll-ms must be a whole number, got '10'"),
    ("ptrace", {"exitkill": "yes"}, "--exitkill is on or off"),
    ("unotify", {"capture": "half"}, "unknown --capture 'half'"),
    ("bpftrace", {"probe": "uprobe"}, "bpftrace --probe uprobe only counts"),
])
def test_a_bad_value_is_refused_by_its_flag_before_anything_runs(method, options, refusal):
    with pytest.raises(ObserverError) as refused:
        REGISTRY[method].check_options(**options)
    assert refusal in str(refused.value)
    # the constructor makes the same check, before it asks whether the technique can run here
    with pytest.raises(ObserverError) as refused_again:
        REGISTRY[method](**options)
    assert str(refused_again.value) == str(refused.value)


def test_a_value_given_is_the_value_the_observer_uses():
    chosen = EbpfObserver.Options.of({"ring_mb": 1, "hook": "tracepoint", "spin_us": 50})
    assert (chosen.ring_mb, chosen.hook, chosen.spin_us, chosen.wakeup) == (1, "tracepoint", 50, "poll")
    with pytest.raises(Exception):  # frozen: what was checked is what runs
        chosen.ring_mb = 3  # type: ignore[misc]


def test_an_option_named_by_two_techniques_must_mean_one_thing():
    @dataclass(frozen=True)
    class Clashing(Options):
        ring_mb: int = option(32, "another ring size", type=int)  # ebpf's --ring-mb defaults to 64

    with pytest.raises(TypeError, match="--ring-mb of clash differs from the one"):
        type("ClashingObserver", (EbpfObserver,), {"method": "clash", "Options": Clashing})
    assert "clash" not in REGISTRY


def test_shared_options_are_made_fresh_for_each_declaration():
    """A dataclass field is bound to the class that declares it: a shared option must be a new
    field each time, or two techniques' Options would share (and overwrite) one."""
    assert shared.ring_mb() is not shared.ring_mb()
    assert REGISTRY["ebpf"].cli_options["ring_mb"] == REGISTRY["uprobe"].cli_options["ring_mb"]
